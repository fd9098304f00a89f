"""Sampling completions from a causal LM, the "act" step of RL on a language model (chapter 05).

Generation is an episode of an MDP: the state is prompt + tokens so far, the action is the next token,
the episode ends at ``<eos>`` (or after ``max_new_tokens``). :func:`generate` runs many episodes at once:

- prompts are left-padded, so every prompt ends in the same column ``P - 1`` and generated tokens fill
  columns ``P, P+1, ...``; position ids follow the attention mask, so padding changes nothing;
- each prompt is encoded ONCE and its key/value cache repeated for its ``num_samples`` samples (measured
  ~4x faster on a CPU than recomputing every sequence per token); the samples of one prompt are
  contiguous rows;
- temperature (0 = greedy) and top-k; a ``torch.Generator`` makes sampling reproducible;
- after a row emits ``<eos>`` it is padded (attention 0) until every row is done.

Public API
----------
- ``Rollout`` (dataclass): ``input_ids (B, T)``, ``attention_mask (B, T)``, ``completion_mask (B, T)`` (1 on
  generated tokens up to and including ``<eos>``; 0 on prompt, left padding and after ``<eos>``),
  ``prompt_index (B,)`` (row -> index into ``prompts``), ``finished (B,)`` bool (emitted ``<eos>``),
  ``prompts`` (the unique prompts), ``completions`` (generated text per row without its ``<eos>``; any other
  special token stays visible, e.g. ``"6<bos>8"``, so a reward rule cannot be fooled by it), ``texts``
  (prompt + completion per row), ``prompt_length`` (``P``), ``num_samples``; properties ``row_prompts``,
  ``completion_lengths (B,)``.
- ``generate(model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, top_k=None, num_samples=1,
  generator=None) -> Rollout``; ``prompts`` is a list of strings, or one string (= one prompt).

The KV cache is a transformers ``Cache`` object passed as ``cache=``, the name current transformers
uses (5.24: ``past_key_values=`` is deprecated and will be removed in 5.40). Older releases, whose
outputs have no ``cache`` field, get the same object as ``past_key_values=`` (:func:`_cache_name`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcourse.checks import check_int, check_number
from rlcourse.lm.model import position_ids_from_mask
from rlcourse.lm.tokenizer import encode_prompts


@dataclass
class Rollout:
    """A batch of sampled completions; row ``i`` continues ``prompts[prompt_index[i]]``."""

    input_ids: torch.Tensor  # (B, T) long, left-padded prompt then completion (then padding)
    attention_mask: torch.Tensor  # (B, T) long, 1 on real tokens (prompt + completion incl. <eos>)
    completion_mask: torch.Tensor  # (B, T) long, 1 on generated tokens up to and including <eos>
    prompt_index: torch.Tensor  # (B,) long
    finished: torch.Tensor  # (B,) bool, True if the row emitted <eos>
    prompts: list[str]
    completions: list[str]
    texts: list[str]
    prompt_length: int
    num_samples: int

    @property
    def row_prompts(self) -> list[str]:
        """The prompt of every row, length ``B``."""
        return [self.prompts[i] for i in self.prompt_index.tolist()]

    @property
    def completion_lengths(self) -> torch.Tensor:
        """Number of generated tokens per row (``<eos>`` included), ``(B,)``."""
        return self.completion_mask.sum(-1)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def _sample(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """Next token per row from ``logits (B, V)``: greedy when ``temperature == 0``; returns ``(B,)``."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _cache_name(out) -> str:
    """The name the KV cache goes by: ``"cache"`` (transformers 5.24) or ``"past_key_values"`` (older).

    Read off the first forward pass's output, so it also works for a wrapper whose ``forward(**kw)``
    passes everything through to a Hugging Face model.
    """
    return "cache" if "cache" in out.keys() else "past_key_values"


def _check_generate_args(prompts, max_new_tokens, temperature, top_k, num_samples, generator) -> tuple:
    """Validate :func:`generate`'s arguments; return ``(prompts as a list, max_new_tokens, top_k, num_samples)``.

    NumPy integers count as integers (e.g. ``rng.integers(...)`` as ``num_samples``).
    """
    if isinstance(prompts, str):
        prompts = [prompts]  # one string is one prompt, never one prompt per character
    elif isinstance(prompts, bytes) or not hasattr(prompts, "__iter__"):
        raise TypeError(
            f"prompts must be a list of strings (or one string), got {type(prompts).__name__}; "
            'e.g. generate(model, tokenizer, ["1+1=", "2+3="])'
        )
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a string, got {p!r} ({type(p).__name__})")
    max_new_tokens, top_k, num_samples = (
        int(v) if isinstance(v, np.integer) else v for v in (max_new_tokens, top_k, num_samples)
    )
    check_int("max_new_tokens", max_new_tokens, low=1, fix="pass a whole number of tokens, e.g. 8")
    check_number("temperature", temperature, low=0.0, fix="use 1.0 to sample, 0 for greedy decoding")
    if top_k is not None:
        check_int("top_k", top_k, low=1, fix="pass a positive integer, or None to sample from every token")
    check_int("num_samples", num_samples, low=1, fix="pass the number of completions per prompt, e.g. 4")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}; "
            "e.g. torch.Generator(device=device).manual_seed(0)"
        )
    return prompts, max_new_tokens, top_k, num_samples


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 8,
    temperature: float = 1.0,
    top_k: int | None = None,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Sample ``num_samples`` completions for each prompt (``B = len(prompts) * num_samples`` rows).

    Args:
        model: a Hugging Face causal LM (its device is used for everything).
        tokenizer: its tokenizer (needs a pad and an eos token).
        prompts: list of prompt strings (the tokenizer adds ``<bos>``); one string is one prompt.
        max_new_tokens: the episode's time limit; rows without ``<eos>`` by then have ``finished=False``.
        temperature: softmax temperature; ``0`` means greedy (argmax).
        top_k: sample only among the ``top_k`` most likely tokens (None: all).
        num_samples: completions per prompt (GRPO's group size G); contiguous rows.
        generator: a ``torch.Generator`` on the model's device, for reproducible samples.

    Returns:
        a :class:`Rollout`; ``T = P + L`` with ``P`` the padded prompt width and ``L <= max_new_tokens``.

    Raises ``TypeError``/``ValueError`` naming the argument for a non-integer or non-positive
    ``max_new_tokens``/``num_samples``/``top_k``, a negative temperature, or a prompt with a character the
    tokenizer does not know.
    """
    prompts, max_new_tokens, top_k, num_samples = _check_generate_args(
        prompts, max_new_tokens, temperature, top_k, num_samples, generator
    )
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; generation needs one to know when to stop")
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)
    B0, P = prompt_ids.shape
    n_pos = getattr(model.config, "n_positions", getattr(model.config, "max_position_embeddings", None))
    if n_pos is not None and int(prompt_mask.sum(-1).max()) + max_new_tokens > n_pos:
        raise ValueError(
            f"prompt ({int(prompt_mask.sum(-1).max())} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's {n_pos} positions; shorten the prompt or lower max_new_tokens"
        )

    was_training = model.training
    model.eval()
    try:
        out = model(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            position_ids=position_ids_from_mask(prompt_mask),
            use_cache=True,
        )
        cache_name = _cache_name(out)
        cache = out[cache_name]
        logits = out.logits[:, -1, :]
        if num_samples > 1:  # encode once, repeat the cache for the G samples of each prompt
            cache.batch_repeat_interleave(num_samples)
            logits = logits.repeat_interleave(num_samples, dim=0)
        mask = prompt_mask.repeat_interleave(num_samples, dim=0)
        B = B0 * num_samples
        done = torch.zeros(B, dtype=torch.bool, device=device)
        new_tokens, new_mask = [], []
        for _ in range(max_new_tokens):
            tok = _sample(logits, temperature, top_k, generator)
            alive = ~done
            tok = torch.where(alive, tok, torch.full_like(tok, pad))
            new_tokens.append(tok)
            new_mask.append(alive.long())
            done = done | (alive & (tok == eos))
            if bool(done.all()):
                break
            mask = torch.cat([mask, alive.long()[:, None]], dim=1)
            pos = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
            out = model(
                input_ids=tok[:, None],
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                **{cache_name: cache},
            )
            cache = out[cache_name]
            logits = out.logits[:, -1, :]
    finally:
        model.train(was_training)

    gen = torch.stack(new_tokens, dim=1)  # (B, L)
    gen_mask = torch.stack(new_mask, dim=1)  # (B, L)
    input_ids = torch.cat([prompt_ids.repeat_interleave(num_samples, dim=0), gen], dim=1)
    attention_mask = torch.cat([prompt_mask.repeat_interleave(num_samples, dim=0), gen_mask], dim=1)
    completion_mask = torch.cat(
        [torch.zeros_like(prompt_mask).repeat_interleave(num_samples, dim=0), gen_mask], 1
    )
    prompt_index = torch.arange(B0, device=device).repeat_interleave(num_samples)
    completions = []
    for row, m in zip(gen.tolist(), gen_mask.tolist(), strict=True):
        ids = [t for t, keep in zip(row, m, strict=True) if keep and t != eos]
        # keep other special tokens visible: a stray <bos> inside an answer must not be silently dropped
        completions.append(tokenizer.decode(ids, skip_special_tokens=False))
    texts = [prompts[i] + c for i, c in zip(prompt_index.tolist(), completions, strict=True)]
    return Rollout(
        input_ids=input_ids,
        attention_mask=attention_mask,
        completion_mask=completion_mask,
        prompt_index=prompt_index,
        finished=done,
        prompts=prompts,
        completions=completions,
        texts=texts,
        prompt_length=P,
        num_samples=num_samples,
    )
