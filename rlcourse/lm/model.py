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
  or a hub id (needs a network connection).
- ``shipped_models() -> list[str]``, ``data_dir() -> Path`` (``$RLCOURSE_DATA`` or the repo's ``data/``).
- ``position_ids_from_mask(attention_mask) -> (B, T)``: ``cumsum - 1`` clamped at 0.
- ``ValueHeadModel(backbone)``: ``forward(input_ids, attention_mask) -> values (B, T)``.
- ``RewardModel(backbone)``: ``forward(input_ids, attention_mask) -> scores (B,)``.
  Both have ``save_pretrained(folder, tokenizer=None)`` and ``from_pretrained(folder, device=None)``
  (backbone via ``save_pretrained``, head in ``head.safetensors``, ``manifest.json`` with sha256).
- ``last_token_index(attention_mask) -> (B,)``: column of each row's last real token (left or right padding).
- ``frozen_copy(model)``: deep copy, ``eval()``, ``requires_grad=False``.
- ``count_parameters(model, trainable_only=False) -> int`` (shared/tied weights counted once).
- ``write_manifest(folder, **info) -> dict`` and ``verify_manifest(folder) -> dict``: sha256 of every file.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

SHIPPED = ("arithmetic", "reviews")
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head_config.json"


def data_dir() -> Path:
    """Folder of the shipped models: ``$RLCOURSE_DATA`` if set, else ``data/`` at the repository root."""
    env = os.environ.get("RLCOURSE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def shipped_models() -> list[str]:
    """Names :func:`load_model` accepts without a path."""
    return list(SHIPPED)


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


# ----------------------------------------------------------------------------------------- files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: str | Path, **info) -> dict:
    """Write ``folder/manifest.json``: the sha256 of every other file in ``folder`` plus ``info`` (JSON-able).

    Returns the manifest as a dict. Keys are sorted so a rebuild gives byte-identical manifests.
    """
    folder = Path(folder)
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {"files": files, **info}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def verify_manifest(folder: str | Path) -> dict:
    """Check every file listed in ``folder/manifest.json`` against its sha256; return the manifest.

    Raises ``FileNotFoundError`` if the manifest or a listed file is missing and ``ValueError`` if a file's
    hash differs (both say to rebuild with ``make data``).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild the shipped models with `make data`")
    manifest = json.loads(path.read_text())
    for name, digest in manifest.get("files", {}).items():
        f = folder / name
        if not f.is_file():
            raise FileNotFoundError(f"{f} is listed in {path} but missing; rebuild with `make data`")
        if _sha256(f) != digest:
            raise ValueError(
                f"{f} is corrupted (its sha256 does not match {path}); rebuild with `make data` "
                "(or restore it with `git checkout data/`)"
            )
    return manifest


def read_manifest(name_or_path: str | Path) -> dict:
    """The manifest of a shipped model (``"arithmetic"``) or of a folder, without loading the model."""
    folder = data_dir() / str(name_or_path) if str(name_or_path) in SHIPPED else Path(name_or_path)
    return verify_manifest(folder)


# ----------------------------------------------------------------------------------------- loading


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else (``./x``, ``/x``, ``a/b/c``, ``~``) is a path."""
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or (os.sep != "/" and os.sep in name)
    )


@contextlib.contextmanager
def quiet_progress():
    """Silence transformers' per-file progress bars ("Loading weights", "Writing model shards") for tiny models."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _resolve(name_or_path: str | Path) -> tuple[str, bool]:
    """Return ``(where, is_local)``, checking shipped files and raising clear errors for missing paths."""
    name = str(name_or_path)
    if name in SHIPPED:
        folder = data_dir() / name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"the shipped model {name!r} is missing from {folder}; rebuild it with `make data`"
            )
        verify_manifest(folder)
        return str(folder), True
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / MANIFEST).is_file():
            verify_manifest(path)
        return str(path), True
    if path.exists():
        raise ValueError(f"{path} is a file; pass the folder that holds config.json and the weights")
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise FileNotFoundError(
            f"model folder {path} does not exist; pass a shipped name ({', '.join(SHIPPED)}), "
            "an existing Hugging Face model folder, or a hub id"
        )
    if _offline():
        raise FileNotFoundError(
            f"{name!r} is not a shipped model ({', '.join(SHIPPED)}) and does not exist as a local folder, "
            "and the Hugging Face hub cannot be reached (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). "
            "Pass a local folder, or unset the offline flag on a connected machine."
        )
    return name, False


def load_model(name_or_path: str | Path = "arithmetic", device: torch.device | str | None = None):
    """Load a causal LM and its tokenizer: ``model, tokenizer = load_model("arithmetic", device)``.

    Args:
        name_or_path: a shipped name (``"arithmetic"``, ``"reviews"``; files checked against the manifest's
            sha256), a local Hugging Face model folder (checked too if it has a ``manifest.json``), or a hub id such as ``"gpt2"`` (downloads; needs a
            network connection).
        device: where to put the model (default: the CPU).

    Returns:
        ``(model, tokenizer)``: the model in ``eval()`` mode; the tokenizer with ``padding_side="left"`` and
        a pad token (a foreign tokenizer without one gets its eos as pad, with a warning about #35352).
    """
    where, local = _resolve(name_or_path)
    try:
        with quiet_progress() if local else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_pretrained(where)
            tokenizer = AutoTokenizer.from_pretrained(where)
    except OSError as err:
        if local:
            raise
        raise FileNotFoundError(
            f"{where!r} does not exist as a local folder and could not be fetched from the Hugging Face hub "
            f"(no network, or no such model): {err}. Pass a shipped name ({', '.join(SHIPPED)}) or a local folder."
        ) from err
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        import warnings

        warnings.warn(
            f"{where}: the tokenizer has no pad token; using its eos token as pad. Masks, not token ids, "
            "mark padding everywhere in rlcourse, but beware of code that finds the end by searching for "
            "the pad id (transformers #35352).",
            stacklevel=2,
        )
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device if device is not None else "cpu")
    model.eval()
    return model, tokenizer


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


def check_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """Raise ValueError unless ``input_ids`` is a non-empty ``(B, T)`` batch with a same-shape mask."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has {tuple(input_ids.shape)}; "
            "they must match"
        )
    if input_ids.shape[0] == 0:
        raise ValueError("empty batch: input_ids has zero rows")


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
        check_batch(input_ids, attention_mask)
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
        """Save backbone (safetensors + config), head (``head.safetensors``), tokenizer, and a manifest with ``info``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_progress():
            self.backbone.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, folder / HEAD_FILE
        )
        (folder / HEAD_CONFIG).write_text(json.dumps({"kind": self.kind}) + "\n")
        return write_manifest(folder, **info)

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
        kind = json.loads(head_cfg.read_text()).get("kind")
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
