"""The four models of RLHF as real objects (chapter 05): policy, critic, reward model, reference.

- **policy** (策略模型): a causal LM, here a tiny GPT-2 built from a config (:func:`tiny_gpt2_config`), or any
  Hugging Face causal LM loaded with :func:`load_model`.
- **critic / value model** (价值模型): :class:`ValueHeadModel`, a backbone plus a linear head giving a value
  per token, ``(B, T)``.
- **reward model** (奖励模型): :class:`RewardModel`, a backbone plus a linear head read at the last real
  token of each row, ``(B,)``.
- **reference model** (参考模型): :func:`frozen_copy` of the policy, never trained.

Public API
----------
- ``tiny_gpt2_config(vocab_size, n_embd=64, n_layer=4, n_head=4, n_positions=128, **overrides) -> GPT2Config``
  (exact ``"gelu"``, no dropout, so a forward pass is deterministic and train/eval modes agree).
- ``init_model(tokenizer, seed=0, **config_overrides) -> GPT2LMHeadModel``: a fresh, seeded tiny GPT-2.
- ``load_model(name_or_path="arithmetic", device=None) -> (model, tokenizer)``: a shipped name
  (``"arithmetic"``, ``"reviews"``; sha256 checked against ``manifest.json``), a local Hugging Face folder,
  or a hub id (needs a network connection) -- defined in :mod:`rlcourse.lm.loading`, re-exported here.
- ``shipped_models() -> list[str]``, ``data_dir() -> Path`` (``$RLCOURSE_DATA`` or the repo's ``data/``),
  ``save_model(model, folder, tokenizer=None, **info)`` (atomic) -- from :mod:`rlcourse.lm.files`.
- ``position_ids_from_mask(attention_mask) -> (B, T)``: ``cumsum - 1`` clamped at 0.
- ``check_batch(input_ids, attention_mask, vocab=None)``: integer ids (inside ``[0, vocab)``), a same-shape
  0/1 mask with a real token in every row; ``vocab_size(model)``.
- ``ValueHeadModel(backbone)``: ``forward(input_ids, attention_mask) -> values (B, T)``.
- ``RewardModel(backbone)``: ``forward(input_ids, attention_mask) -> scores (B,)``.
  Both have ``save_pretrained(folder, tokenizer=None, **info)`` (atomic: written beside ``folder`` and
  renamed into place) and ``from_pretrained(folder, device=None)`` (backbone via ``save_pretrained``, head
  in ``head.safetensors``, ``manifest.json`` with sha256).
- ``last_token_index(attention_mask) -> (B,)``: column of each row's last real token (left or right padding).
- ``frozen_copy(model)``: deep copy, ``eval()``, ``requires_grad=False``.
- ``count_parameters(model, trainable_only=False) -> int`` (shared/tied weights counted once).
- ``write_manifest(folder, **info) -> dict`` and ``verify_manifest(folder) -> dict``: sha256 of every file
  (from :mod:`rlcourse.lm.files`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from rlcourse.checks import check_binary
from rlcourse.lm.files import (  # noqa: F401 - re-exported: rlcourse.lm.model is where learners look
    HEAD_CONFIG,
    HEAD_FILE,
    MANIFEST,
    SHIPPED,
    check_model_folder,
    check_safetensors,
    data_dir,
    hub_unreachable,
    offline,
    quiet_progress,
    read_json,
    read_manifest,
    save_folder,
    save_model,
    shipped_models,
    verify_manifest,
    write_manifest,
)
from rlcourse.lm.loading import _offline, _resolve, load_model  # noqa: F401 - re-exported


def tiny_gpt2_config(
    vocab_size: int,
    n_embd: int = 64,
    n_layer: int = 4,
    n_head: int = 4,
    n_positions: int = 128,
    pad_token_id: int | None = 0,
    bos_token_id: int | None = 1,
    eos_token_id: int | None = 2,
    **overrides,
) -> GPT2Config:
    """A small GPT-2 config: ``n_embd=64, n_layer=4`` gives about 0.2 M parameters with a 50-token vocabulary (the shipped reviews model; the arithmetic model is 96 wide, 0.46 M).

    Exact ``"gelu"`` (1.4x faster per step on a CPU than GPT-2's tanh approximation, measured for the course)
    and all dropout 0, so two forward passes on the same input agree (PPO's ratio starts at exactly 1).
    """
    kw = dict(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        tie_word_embeddings=True,
    )
    kw.update(overrides)
    return GPT2Config(**kw)


def init_model(tokenizer, seed: int = 0, **config_overrides) -> GPT2LMHeadModel:
    """A freshly initialised tiny GPT-2 for ``tokenizer`` (seeded), e.g. ``init_model(build_tokenizer(), n_layer=2)``."""
    torch.manual_seed(seed)
    cfg = tiny_gpt2_config(
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **config_overrides,
    )
    return GPT2LMHeadModel(cfg)


# ----------------------------------------------------------------------------------------- heads


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counted over real tokens only: ``(cumsum(mask) - 1).clamp(min=0)``, ``(B, T)``.

    With these, a left-padded row gets the same positions (hence the same outputs) as the unpadded row.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Column of the last real token of each row, ``(B,)``; works for left and right padding.

    Raises ``ValueError`` if a row has no real token.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    if (attention_mask.sum(-1) == 0).any():
        raise ValueError("a row of attention_mask is all zeros: every sequence needs at least one real token")
    cols = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (cols * (attention_mask != 0)).argmax(-1)


def vocab_size(model) -> int | None:
    """Number of token ids ``model`` accepts (its input embedding's rows), or None if it does not say."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if emb is not None and hasattr(emb, "num_embeddings"):
        return int(emb.num_embeddings)
    config = getattr(model, "config", None)
    return getattr(config, "vocab_size", None)


def check_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab: int | None = None) -> None:
    """Raise unless ``input_ids`` is a non-empty ``(B, T)`` integer batch with a same-shape 0/1 mask.

    Also refused: an attention row with no real token, and (given ``vocab``) ids outside ``[0, vocab)``.
    """
    for name, x in (("input_ids", input_ids), ("attention_mask", attention_mask)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (B, T), got {type(x).__name__}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has {tuple(input_ids.shape)}; "
            "they must match"
        )
    if input_ids.shape[0] == 0:
        raise ValueError("empty batch: input_ids has zero rows")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.is_complex():
        raise TypeError(
            f"input_ids must hold integer token ids (torch.long), got dtype {input_ids.dtype}; "
            "use the tokenizer's output, or input_ids.long() if they are whole numbers"
        )
    if vocab is not None and input_ids.numel() > 0:
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= vocab:
            bad = lo if lo < 0 else hi
            index = tuple(int(i) for i in (input_ids == bad).nonzero()[0])
            raise ValueError(
                f"input_ids holds the id {bad} at index {index}, outside the model's vocabulary [0, {vocab}); "
                "encode text with the model's own tokenizer"
            )
    check_binary("attention_mask", attention_mask)
    empty = (attention_mask == 0).all(-1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise ValueError(
            f"attention_mask row {row} is all zeros: every sequence needs at least one real token "
            "(a prompt of at least <bos>)"
        )


class _ScalarHead(nn.Module):
    """A backbone (any HF causal LM or base model) plus a linear layer mapping the last hidden state to a scalar."""

    kind = "scalar"

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        return self.backbone.config

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``(B, T, H)`` with position ids from the attention mask."""
        check_batch(input_ids, attention_mask, vocab_size(self.backbone))
        body = getattr(self.backbone, "base_model", self.backbone)
        out = body(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        return out.last_hidden_state

    def token_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head applied at every position, ``(B, T)``."""
        return self.head(self.hidden_states(input_ids, attention_mask)).squeeze(-1)

    def save_pretrained(self, folder: str | Path, tokenizer=None, **info) -> dict:
        """Save backbone (safetensors + config), head (``head.safetensors``), tokenizer, and a manifest with ``info``.

        Atomic: the files are written into a temporary folder that replaces ``folder`` when complete, so an
        interrupted save leaves a previous checkpoint in ``folder`` loadable. ``info`` is checked for JSON
        types before anything is written. Returns the manifest.
        """

        def write(tmp: Path) -> None:
            with quiet_progress():
                self.backbone.save_pretrained(tmp)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, tmp / HEAD_FILE)
            (tmp / HEAD_CONFIG).write_text(json.dumps({"kind": self.kind}) + "\n")

        return save_folder(folder, write, **info)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | str | None = None):
        """Load a model saved by :meth:`save_pretrained` (sha256 checked when a manifest is present)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist; save a {cls.__name__} there first")
        if (folder / MANIFEST).is_file():
            verify_manifest(folder)
        head_cfg = folder / HEAD_CONFIG
        if not head_cfg.is_file() or not (folder / HEAD_FILE).is_file():
            raise FileNotFoundError(f"{folder} has no {HEAD_FILE}/{HEAD_CONFIG}: not a saved {cls.__name__}")
        check_model_folder(folder, need_tokenizer=False)
        kind = read_json(head_cfg).get("kind")
        if kind != cls.kind:
            raise ValueError(f"{folder} holds a {kind!r} head, not a {cls.kind!r} head ({cls.__name__})")
        with quiet_progress():
            model = cls(AutoModelForCausalLM.from_pretrained(folder))
        model.head.load_state_dict(load_file(folder / HEAD_FILE))
        model.to(device if device is not None else "cpu")
        model.eval()
        return model


class ValueHeadModel(_ScalarHead):
    """Critic (价值模型): ``values = critic(input_ids, attention_mask)``, shape ``(B, T)``.

    ``values[:, t]`` estimates the return from the state "prompt + tokens up to column t", i.e. before the
    token in column ``t + 1`` is chosen -- it lines up with ``token_logprobs(...)[:, t]``.
    """

    kind = "value"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.token_scores(input_ids, attention_mask)


class RewardModel(_ScalarHead):
    """Reward model (奖励模型): ``scores = rm(input_ids, attention_mask)``, shape ``(B,)``.

    The score is the head read at the LAST REAL token of each row (found from ``attention_mask``, so left
    and right padding give the same score, and pad == eos cannot fool it).
    """

    kind = "reward"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.token_scores(input_ids, attention_mask)
        idx = last_token_index(attention_mask)
        return scores.gather(1, idx[:, None]).squeeze(1)


def frozen_copy(model: nn.Module) -> nn.Module:
    """The reference model (参考模型): a deep copy in ``eval()`` mode with every ``requires_grad`` False."""
    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (tied weights such as GPT-2's embedding/LM head counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
