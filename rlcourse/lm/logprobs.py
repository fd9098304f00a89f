"""Masked log-probabilities of tokens under a causal LM (chapter 05; used by every LM algorithm).

The logits at position ``t`` score the token at position ``t + 1``, so a sequence of ``T`` tokens has
``T - 1`` scored tokens: ``token_logprobs[:, t] = log pi(input_ids[:, t+1] | input_ids[:, :t+1])``. The first
token (``<bos>``) is never scored. Position ids are ``cumsum(attention_mask) - 1`` (clamped at 0), so left
padding changes no log-prob. Optional ``temperature`` divides the logits first, as TRL does, so the
log-probs match the distribution the completions were sampled from.

Public API
----------
- ``token_logprobs(model, input_ids, attention_mask, temperature=1.0) -> (B, T-1)``
- ``sequence_logprobs(model, input_ids, attention_mask, completion_mask, temperature=1.0) -> (B,)``:
  sum over completion tokens only (prompt and padding excluded).
- ``shift_mask(completion_mask) -> (B, T-1)``: ``completion_mask[:, 1:]``, the mask aligned with
  ``token_logprobs`` (validated).
- ``masked_mean(x, mask, dim=None) -> tensor``: mean of ``x`` where ``mask`` is 1.
- ``logprobs_from_logits(logits, input_ids, temperature=1.0) -> (B, T-1)``: the same from precomputed logits.
"""

from __future__ import annotations

import torch

from rlcourse.lm.model import check_batch, position_ids_from_mask


def _check(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    check_batch(input_ids, attention_mask)
    if input_ids.shape[1] < 2:
        raise ValueError(f"need at least 2 tokens per row to score one (got T={input_ids.shape[1]})")


def logprobs_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``log_softmax(logits[:, :-1] / temperature)`` gathered at ``input_ids[:, 1:]``: ``(B, T, V) -> (B, T-1)``."""
    if logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match input_ids {tuple(input_ids.shape)} in (B, T)"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    logp = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def token_logprobs(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Log-prob of every token given the tokens before it, ``(B, T-1)``; entries on padding are meaningless.

    Gradients flow (wrap in ``torch.no_grad()`` for the reference model).
    """
    _check(input_ids, attention_mask)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    return logprobs_from_logits(out.logits, input_ids, temperature)


def shift_mask(completion_mask: torch.Tensor) -> torch.Tensor:
    """``completion_mask (B, T) -> (B, T-1)`` aligned with :func:`token_logprobs` (column t scores token t+1)."""
    if completion_mask.dim() != 2:
        raise ValueError(f"completion_mask must be (B, T), got shape {tuple(completion_mask.shape)}")
    if bool((completion_mask[:, 0] != 0).any()):
        raise ValueError(
            "completion_mask is 1 on the first token, which has no log-prob (nothing before it); "
            "a completion must follow a prompt of at least one token (e.g. <bos>)"
        )
    return completion_mask[:, 1:]


def sequence_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Sum of the log-probs of the completion tokens of each row, ``(B,)`` (prompt and padding excluded)."""
    _check(input_ids, attention_mask)
    if completion_mask.shape != input_ids.shape:
        raise ValueError(
            f"completion_mask has shape {tuple(completion_mask.shape)} but input_ids has {tuple(input_ids.shape)}"
        )
    if bool(((completion_mask != 0) & (attention_mask == 0)).any()):
        raise ValueError(
            "completion_mask is 1 where attention_mask is 0: a completion token cannot be padding"
        )
    mask = shift_mask(completion_mask).to(torch.float32)
    return (token_logprobs(model, input_ids, attention_mask, temperature) * mask).sum(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is nonzero (over ``dim``, or over everything).

    Raises ``ValueError`` on a shape mismatch or when the mask selects nothing.
    """
    if x.shape != mask.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but mask has {tuple(mask.shape)}")
    m = mask.to(x.dtype)
    if dim is None:
        n = m.sum()
        if n == 0:
            raise ValueError("masked_mean: the mask selects no entries")
        return (x * m).sum() / n
    n = m.sum(dim)
    if bool((n == 0).any()):
        raise ValueError(f"masked_mean: the mask selects no entries along dim {dim} for some rows")
    return (x * m).sum(dim) / n
