"""Per-token estimators of KL(pi || pi_ref) from sampled tokens (chapter 05; used in 07-09).

With tokens sampled from the policy pi and ``r = ref_logp - logp = log(pi_ref / pi)`` (John Schulman,
"Approximating KL divergence", 2020):

- ``k1 = -r = logp - ref_logp``: unbiased, high variance, can be negative on single tokens (trl #925);
- ``k2 = r**2 / 2``: biased, low variance, never negative;
- ``k3 = exp(r) - r - 1``: unbiased and never negative (``e^r >= 1 + r``); GRPO's KL term and the
  "approx KL" CleanRL logs.

All take and return tensors of the same shape (any shape, typically ``(B, T-1)`` token log-probs) and
leave masking to the caller (``rlcourse.lm.logprobs.masked_mean``).

Public API
----------
- ``kl_k1(logp, ref_logp)``, ``kl_k2(logp, ref_logp)``, ``kl_k3(logp, ref_logp)``
- ``kl_estimate(logp, ref_logp, kind="k3")``: dispatch by name (``"k1" | "k2" | "k3"``).
"""

from __future__ import annotations

import torch


def _check(logp: torch.Tensor, ref_logp: torch.Tensor) -> None:
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp has shape {tuple(logp.shape)} but ref_logp has {tuple(ref_logp.shape)}")


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``logp - ref_logp`` per token (same shape as the inputs)."""
    _check(logp, ref_logp)
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``0.5 * (logp - ref_logp) ** 2`` per token."""
    _check(logp, ref_logp)
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``exp(ref_logp - logp) - (ref_logp - logp) - 1`` per token, always >= 0."""
    _check(logp, ref_logp)
    r = ref_logp - logp
    return torch.expm1(r) - r


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """``kl_k1``/``kl_k2``/``kl_k3`` chosen by ``kind``."""
    fns = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
    if kind not in fns:
        raise ValueError(f"kind must be one of {sorted(fns)}, got {kind!r}")
    return fns[kind](logp, ref_logp)
