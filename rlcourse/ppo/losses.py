"""PPO's losses (chapter 04, ``notebooks/04_ppo_gae.ipynb``); chapter 07 reuses them on tokens.

Every loss takes an optional ``mask`` (same shape, 1 = count this element): the mean is then over
the masked elements only, as the LM track needs for padded completions. Elements outside the mask
are replaced (``torch.where``) before any arithmetic, so a NaN there can reach neither the loss nor
the gradient. A NaN or inf inside the mask is refused with the tensor's name and the first index.
"""

from __future__ import annotations

import torch

from rlcourse.checks import check_binary, check_finite, check_number

__all__ = ["adaptive_kl_beta", "approx_kl", "clipped_surrogate_loss", "clipped_value_loss", "kl_penalty_loss"]


def _prepare(mask: torch.Tensor | None, **tensors: torch.Tensor) -> list[torch.Tensor]:
    """Check types, shapes and finiteness; return the tensors with masked-out elements set to 0."""
    for name, t in {**tensors, "mask": mask}.items():
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(t).__name__}; wrap it with torch.as_tensor"
            )
    shapes = {name: tuple(t.shape) for name, t in {**tensors, "mask": mask}.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"inputs must have the same shape, got {shapes}; nothing is broadcast")
    if any(t.numel() == 0 for t in tensors.values()):
        raise ValueError(f"inputs are empty (shapes {shapes}); a loss needs at least one element")
    if mask is not None:  # torch.where, not a product: 0 * NaN would still be NaN
        keep = check_binary("mask", mask).to(torch.bool)
        tensors = {name: torch.where(keep, t, 0.0) for name, t in tensors.items()}
    total = sum(t.detach().sum() for t in tensors.values())  # any NaN or inf makes this non-finite
    if not bool(torch.isfinite(total)):  # rare: find and name the culprit (a mere overflow passes)
        for name, t in tensors.items():
            check_finite(name, t)
    return list(tensors.values())


def _mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x``, or over the elements where ``mask == 1`` (mask has x's shape)."""
    if mask is None:
        return x.mean()
    keep = mask.to(torch.bool)
    count = keep.sum()
    if count.item() == 0:
        raise ValueError("mask selects no element (all zeros); there is nothing to average")
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum() / count


def clipped_surrogate_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO-clip policy loss ``mean(-min(r A, clip(r, 1 - eps, 1 + eps) A))``, a scalar.

    Args:
        logp_new: log pi_theta(a|s) with gradient, any shape (B,), (B, T), ...
        logp_old: log pi_old(a|s) from the rollout, same shape (treated as a constant).
        advantages: A, same shape (treated as a constant).
        clip_eps: eps >= 0 (0 allows no change in the direction the advantage wants).
        mask: optional, same shape; average over ``mask == 1`` only.
    """
    check_number("clip_eps", clip_eps, low=0.0, fix="use e.g. 0.2, the PPO paper's value")
    logp_new, logp_old, adv = _prepare(mask, logp_new=logp_new, logp_old=logp_old, advantages=advantages)
    ratio = torch.exp(logp_new - logp_old.detach())
    adv = adv.detach()
    loss = -torch.min(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    return _mean(loss, mask)


def clipped_value_loss(
    values_new: torch.Tensor,
    values_old: torch.Tensor,
    returns: torch.Tensor,
    clip_eps: float,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))``, a scalar.

    The clipped prediction may move at most ``eps`` (in value units) from the value at collection
    time; taking the max makes the loss pessimistic, so moving V far from V_old gains nothing.
    Shapes: all equal.
    """
    check_number("clip_eps", clip_eps, low=0.0, fix="use e.g. 0.2 (CleanRL) or a value-scale range")
    v_new, v_old, ret = _prepare(mask, values_new=values_new, values_old=values_old, returns=returns)
    v_old, ret = v_old.detach(), ret.detach()
    v_clipped = v_old + (v_new - v_old).clamp(-clip_eps, clip_eps)
    loss = torch.max((v_new - ret) ** 2, (v_clipped - ret) ** 2)
    return 0.5 * _mean(loss, mask)


def approx_kl(
    logp_new: torch.Tensor, logp_old: torch.Tensor, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``mean((r - 1) - log r)`` with ``r = exp(logp_new - logp_old)``: KL(pi_old || pi_new) >= 0.

    Unbiased when the actions were sampled from pi_old, and never negative per sample. Scalar.
    """
    logp_new, logp_old = _prepare(mask, logp_new=logp_new, logp_old=logp_old)
    log_r = logp_new - logp_old.detach()
    return _mean(torch.expm1(log_r) - log_r, mask)


def kl_penalty_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    beta: float,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO-penalty policy loss ``-mean(r A) + beta * KL(pi_old || pi_new)`` (KL as in :func:`approx_kl`).

    Shapes: all equal; returns a scalar. Pair it with :func:`adaptive_kl_beta` after each update.
    """
    check_number("beta", beta, low=0.0, fix="use e.g. 1.0; beta = 0 turns the penalty off")
    logp_new, logp_old, adv = _prepare(mask, logp_new=logp_new, logp_old=logp_old, advantages=advantages)
    log_r = logp_new - logp_old.detach()
    surrogate = _mean(torch.exp(log_r) * adv.detach(), mask)
    return -surrogate + beta * _mean(torch.expm1(log_r) - log_r, mask)


def adaptive_kl_beta(beta: float, kl: float, kl_target: float) -> float:
    """The PPO paper's rule (section 4): halve beta if kl < target / 1.5, double it if kl > 1.5 target."""
    beta = check_number("beta", beta, low=0.0, low_open=True, fix="start from e.g. 1.0")
    kl_target = check_number("kl_target", kl_target, low=0.0, low_open=True, fix="use e.g. 0.01")
    kl = check_number("kl", kl, fix="pass the approx_kl measured after the last update")
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > kl_target * 1.5:
        return beta * 2.0
    return beta
