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

Guards: integer ``input_ids`` inside the model's vocabulary, 0/1 masks, no all-zero attention row or
completion row; a NaN/inf log-prob on a real (unmasked) token raises ``ValueError`` naming the tensor and
its index (a diverged model), while a NaN at a masked-out position never leaks into a sum or mean
(``torch.where``, not multiplication by the mask).
"""

from __future__ import annotations

import torch

from rlcourse.checks import check_binary, check_finite, check_number
from rlcourse.lm.model import check_batch, position_ids_from_mask, vocab_size


def _check(input_ids: torch.Tensor, attention_mask: torch.Tensor, model=None) -> None:
    check_batch(input_ids, attention_mask, vocab_size(model) if model is not None else None)
    if input_ids.shape[1] < 2:
        raise ValueError(f"need at least 2 tokens per row to score one (got T={input_ids.shape[1]})")


def logprobs_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``log_softmax(logits[:, :-1] / temperature)`` gathered at ``input_ids[:, 1:]``: ``(B, T, V) -> (B, T-1)``."""
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids (torch.long), got dtype {input_ids.dtype}")
    if logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match input_ids {tuple(input_ids.shape)} in (B, T)"
        )
    check_number("temperature", temperature, low=0.0, low_open=True, fix="use the sampling temperature (1.0)")
    logp = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def token_logprobs(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Log-prob of every token given the tokens before it, ``(B, T-1)``; entries on padding are meaningless.

    Gradients flow (wrap in ``torch.no_grad()`` for the reference model).
    """
    _check(input_ids, attention_mask, model)
    check_number("temperature", temperature, low=0.0, low_open=True, fix="use the sampling temperature (1.0)")
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    logp = logprobs_from_logits(out.logits, input_ids, temperature)
    return check_finite("token_logprobs (the model's log-probs)", logp, attention_mask[:, 1:] != 0)


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
    _check(input_ids, attention_mask, model)
    if not isinstance(completion_mask, torch.Tensor) or completion_mask.shape != input_ids.shape:
        raise ValueError(
            f"completion_mask has shape {tuple(getattr(completion_mask, 'shape', ()))} but input_ids has "
            f"{tuple(input_ids.shape)}; pass the rollout's completion_mask (B, T)"
        )
    check_binary("completion_mask", completion_mask)
    empty = (completion_mask == 0).all(-1)
    if bool(empty.any()):
        raise ValueError(
            f"completion_mask row {int(empty.nonzero()[0, 0])} is all zeros: that row has no completion token "
            "to score (its log-prob would silently be 0); pass only rows with a completion"
        )
    if bool(((completion_mask != 0) & (attention_mask == 0)).any()):
        raise ValueError(
            "completion_mask is 1 where attention_mask is 0: a completion token cannot be padding"
        )
    mask = shift_mask(completion_mask) != 0
    logp = token_logprobs(model, input_ids, attention_mask, temperature)
    return torch.where(mask, logp, torch.zeros_like(logp)).sum(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None, name: str = "x") -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is nonzero (over ``dim``, or over everything).

    A non-binary ``mask`` weights the entries (``sum(x * mask) / sum(mask)``). Entries where ``mask`` is 0
    never reach the result, even NaN ones (``torch.where``). Raises ``ValueError`` on a shape mismatch,
    when the mask selects nothing, or when a selected entry of ``x`` is NaN/inf (``name`` goes into
    that message, e.g. ``"advantages"``).
    """
    if x.shape != mask.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but mask has {tuple(mask.shape)}")
    keep = mask != 0
    check_finite(name, x, keep)
    m = mask.to(x.dtype)
    xm = torch.where(keep, x * m, torch.zeros_like(x))
    if dim is None:
        n = m.sum()
        if n == 0:
            raise ValueError(f"masked_mean: the mask selects no entries of {name}")
        return xm.sum() / n
    n = m.sum(dim)
    if bool((n == 0).any()):
        raise ValueError(f"masked_mean: the mask selects no entries of {name} along dim {dim} for some rows")
    return xm.sum(dim) / n
