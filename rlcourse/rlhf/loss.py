"""The tensor maths of RLHF-PPO (chapter 07): per-token rewards, GAE over tokens, whitening, the losses.

Pure functions of tensors -- no model is called here. Token alignment: ``token_logprobs`` returns
(B, T-1), column j scoring token j+1 of ``input_ids`` (B, T); every per-token tensor here lives on that
grid of *actions*, whose mask is ``shift_mask(rollout.completion_mask)``. Masked positions never leak
into a result: they are replaced with ``torch.where`` (a NaN times 0 is still NaN), and a NaN or inf
*inside* the mask raises a ``ValueError`` naming the tensor and the first bad index.
"""

from __future__ import annotations

import torch

from rlcourse.checks import check_finite, check_number
from rlcourse.gae import compute_gae
from rlcourse.ppo import clipped_surrogate_loss, clipped_value_loss


def check_mask(mask: torch.Tensor, shape: torch.Size, name: str = "completion_mask") -> torch.Tensor:
    """Validate a 0/1 mask of the given shape with at least one 1 per row; return it as a float tensor."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != shape:
        hint = ""
        if mask.ndim == 2 and len(shape) == 2 and mask.shape[0] == shape[0] and mask.shape[1] == shape[1] + 1:
            hint = (
                " -- it looks like the token-grid mask of input_ids; log-probs live on the action grid "
                "(logits at t score token t+1), so pass rlcourse.lm.logprobs.shift_mask(completion_mask)"
            )
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)} but the per-token tensors have shape {tuple(shape)}{hint}"
        )
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, T) with B, T >= 1, got {tuple(mask.shape)}")
    m = mask.to(torch.float32) if mask.dtype == torch.bool or not mask.is_floating_point() else mask
    if not torch.all((m == 0) | (m == 1)):
        raise ValueError(f"{name} must hold only 0 and 1")
    empty = (m.sum(dim=1) == 0).nonzero().flatten()
    if empty.numel():
        raise ValueError(
            f"{name} rows {empty.tolist()[:5]} have no completion token (an all-zero row); every sequence needs "
            "at least one generated token (check the mask is aligned with the log-probs: use "
            "rlcourse.lm.logprobs.shift_mask)"
        )
    return m


def _per_token(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` as a float (B, T) tensor (integer rewards are converted, not truncated)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a (B, T) torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def _masked(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``x`` where ``m == 1``, exactly 0 elsewhere (even where ``x`` is NaN)."""
    return torch.where(m.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a (B, T) 0/1 mask -> (B,) long.

    With left padding and completions that stop at different lengths, this is the ``<eos>`` (or the
    last generated token when a completion hit the length limit), never a trailing pad.
    """
    m = check_mask(mask, mask.shape, "mask")
    T = m.shape[1]
    return (T - 1) - torch.flip(m, dims=[1]).argmax(dim=1)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Normalise ``x`` to mean 0, std 1 over the masked entries (TRL's ``masked_whiten``); zero elsewhere.

    (B, T), (B, T) -> (B, T). The variance is unbiased (N - 1), as in TRL.
    """
    x = _per_token("x", x)
    m = check_mask(mask, x.shape, "mask").to(x.dtype)
    check_finite("x", x, m)
    x = _masked(x, m)
    n = m.sum()
    mean = x.sum() / n
    var = _masked((x - mean) ** 2, m).sum() / (n - 1).clamp(min=1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return _masked(out, m)


def per_token_rewards(
    scores: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    completion_mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """RLHF reward of every generated token: ``-kl_coef * (logp - ref_logp)``, plus the score at the end.

    ``r_t = -kl_coef * (log pi(a_t|s_t) - log pi_ref(a_t|s_t))`` on completion tokens (0 elsewhere), and
    the reward-model score is added on the *last real completion token* of each row (the largest t with
    ``completion_mask[b, t] == 1``; never a pad).

    Args:
        scores: (B,) reward-model score of each completion (integer scores are used as floats).
        logp: (B, T) log-probs of the taken tokens under the policy that sampled them.
        ref_logp: (B, T) the same under the frozen reference model.
        completion_mask: (B, T) 1 on generated tokens (including ``<eos>``), 0 on prompt and padding;
            on the action grid of ``logp`` (``shift_mask(rollout.completion_mask)``).
        kl_coef: beta >= 0, the weight of the KL penalty.

    Returns:
        (B, T) rewards, no gradient.
    """
    logp, ref_logp = _per_token("logp", logp), _per_token("ref_logp", ref_logp)
    if ref_logp.shape != logp.shape:
        raise ValueError(f"ref_logp has shape {tuple(ref_logp.shape)} but logp has shape {tuple(logp.shape)}")
    if not isinstance(scores, torch.Tensor) or scores.shape != (logp.shape[0],):
        raise ValueError(
            f"scores must have shape ({logp.shape[0]},), one float per sequence, "
            f"got {getattr(scores, 'shape', type(scores).__name__)}"
        )
    check_number("kl_coef", kl_coef, low=0, fix="use 0.05 (TRL), or 0 for no penalty")
    m = check_mask(completion_mask, logp.shape).to(logp.dtype)
    check_finite("scores", scores)
    check_finite("logp", logp, m)
    check_finite("ref_logp", ref_logp, m)
    with torch.no_grad():
        rewards = _masked(-kl_coef * (logp - ref_logp), m)
        last = last_token_index(m)
        rows = torch.arange(logp.shape[0], device=logp.device)
        rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def token_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    completion_mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over the tokens of each completion, with ``rlcourse.gae.compute_gae``.

    Each row is one episode: it starts at the first completion token and ends (done = 1, nothing
    bootstrapped) at the last one. Rewards and values outside the mask are ignored (even NaN), and
    advantages and returns there are 0. The (B, T) batch is transposed to the (T, N) layout of
    ``compute_gae``.

    Args:
        rewards: (B, T) per-token rewards (:func:`per_token_rewards`); integers are used as floats.
        values: (B, T) V_old of the state before each action.
        completion_mask: (B, T) 0/1, contiguous 1s per row (prompt, then completion, then padding).
        gamma, lam: discount and GAE lambda (RLHF uses gamma = 1).

    Returns:
        ``(advantages, returns)``, both (B, T), zero outside the mask; returns = advantages + values.
    """
    rewards, values = _per_token("rewards", rewards), _per_token("values", values)
    if values.shape != rewards.shape:
        raise ValueError(
            f"rewards and values must both have shape (B, T), got {tuple(rewards.shape)} and {tuple(values.shape)}"
        )
    check_number("gamma", gamma, low=0, high=1, fix="RLHF uses gamma = 1")
    check_number("lam", lam, low=0, high=1, fix="use 0.95 (TRL)")
    m = check_mask(completion_mask, rewards.shape).to(values.dtype)
    check_finite("rewards", rewards, m)
    check_finite("values", values, m)
    starts = (torch.diff(m, dim=1, prepend=torch.zeros_like(m[:, :1])) == 1).sum(dim=1)
    if torch.any(starts > 1):
        raise ValueError(
            "completion_mask must have one contiguous run of 1s per row (prompt | completion | pad)"
        )
    done = torch.zeros_like(m)
    rows = torch.arange(m.shape[0], device=m.device)
    done[rows, last_token_index(m)] = 1.0
    r, v = _masked(rewards.to(values.dtype), m).detach(), _masked(values, m).detach()
    adv, ret = compute_gae(r.T, v.T, done.T, torch.zeros_like(v[:, 0]), gamma, lam)
    return _masked(adv.T, m), _masked(ret.T, m)


def ppo_policy_loss(
    logp_new: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """Steps 6-7: ``mean over completion tokens of -min(r A, clip(r, 1-eps, 1+eps) A)`` (``rlcourse.ppo``)."""
    logp_new, old_logp = _per_token("logp_new", logp_new), _per_token("old_logp", old_logp)
    advantages = _per_token("advantages", advantages)
    check_number("clip_eps", clip_eps, low=0, low_open=True, fix="use 0.2 (TRL)")
    m = check_mask(mask, logp_new.shape, "mask")
    for name, t in (("logp_new", logp_new), ("old_logp", old_logp), ("advantages", advantages)):
        check_finite(name, t, m)
    logp_new, old_logp, advantages = _masked(logp_new, m), _masked(old_logp, m), _masked(advantages, m)
    return clipped_surrogate_loss(logp_new, old_logp, advantages, clip_eps, mask=m)


def ppo_value_loss(
    values_new: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """Step 8: ``0.5 mean max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)`` with R = A + V_old."""
    values_new, old_values = _per_token("values_new", values_new), _per_token("old_values", old_values)
    returns = _per_token("returns", returns)
    check_number("clip_eps", clip_eps, low=0, low_open=True, fix="use 0.2 (TRL)")
    m = check_mask(mask, values_new.shape, "mask")
    for name, t in (("values_new", values_new), ("old_values", old_values), ("returns", returns)):
        check_finite(name, t, m)
    values_new, old_values, returns = _masked(values_new, m), _masked(old_values, m), _masked(returns, m)
    return clipped_value_loss(values_new, old_values, returns, clip_eps, mask=m)
