"""Per-token estimators of KL(pi || pi_ref) from sampled tokens (chapter 05; used in 07-09).

With tokens sampled from the policy pi and ``r = ref_logp - logp = log(pi_ref / pi)`` (John Schulman,
"Approximating KL divergence", 2020):

- ``k1 = -r = logp - ref_logp``: unbiased, high variance, can be negative on single tokens (trl #925);
- ``k2 = r**2 / 2``: biased, low variance, never negative;
- ``k3 = exp(r) - r - 1``: unbiased and never negative (``e^r >= 1 + r``); GRPO's KL term and the
  "approx KL" CleanRL logs.

All take and return tensors of the same shape (any shape, typically ``(B, T-1)`` token log-probs) and
leave masking to the caller (``rlcourse.lm.logprobs.masked_mean``). A NaN/inf input raises
``ValueError`` naming the tensor and its first bad index; with ``mask=`` only the selected entries are
checked and the others come back as exactly 0 (``torch.where``, so a NaN there cannot leak).

Public API
----------
- ``kl_k1(logp, ref_logp, mask=None)``, ``kl_k2(...)``, ``kl_k3(...)``
- ``kl_estimate(logp, ref_logp, kind="k3", mask=None)``: dispatch by name (``"k1" | "k2" | "k3"``).
"""

from __future__ import annotations

import torch

from rlcourse.checks import check_choice, check_finite


def _check(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Validate the inputs; return ``mask`` as a bool tensor (or None)."""
    for name, x in (("logp", logp), ("ref_logp", ref_logp)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of log-probs, got {type(x).__name__}")
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp has shape {tuple(logp.shape)} but ref_logp has {tuple(ref_logp.shape)}")
    if mask is not None:
        if mask.shape != logp.shape:
            raise ValueError(f"mask has shape {tuple(mask.shape)} but logp has {tuple(logp.shape)}")
        mask = mask != 0
    check_finite("logp", logp, mask)
    check_finite("ref_logp", ref_logp, mask)
    return mask


def _masked(kl: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return kl if mask is None else torch.where(mask, kl, torch.zeros_like(kl))


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``logp - ref_logp`` per token (same shape as the inputs; 0 where ``mask`` is 0)."""
    mask = _check(logp, ref_logp, mask)
    return _masked(logp - ref_logp, mask)


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``0.5 * (logp - ref_logp) ** 2`` per token (0 where ``mask`` is 0)."""
    mask = _check(logp, ref_logp, mask)
    return _masked(0.5 * (logp - ref_logp) ** 2, mask)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``exp(ref_logp - logp) - (ref_logp - logp) - 1`` per token, always >= 0 (0 where ``mask`` is 0)."""
    mask = _check(logp, ref_logp, mask)
    r = ref_logp - logp
    return _masked(torch.expm1(r) - r, mask)


def kl_estimate(
    logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3", mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``kl_k1``/``kl_k2``/``kl_k3`` chosen by ``kind``."""
    fns = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
    check_choice("kind", kind, sorted(fns))
    return fns[kind](logp, ref_logp, mask)
