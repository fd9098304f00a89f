"""Returns and the REINFORCE loss (chapter 02, ``notebooks/02_policy_gradient.ipynb``).

A batch holds several episodes back to back along time (dim 0); ``dones[t] == 1`` marks the last
step of an episode, so no return flows across it.
"""

from __future__ import annotations

import numpy as np
import torch

from rlcourse.checks import check_binary, check_finite, check_float, check_number


def check_rewards_dones(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> None:
    """Refuse what a return computation must not silently accept (shapes, dtypes, NaN, done flags)."""
    for name, x in (("rewards", rewards), ("dones", dones)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor"
            )
    if rewards.shape != dones.shape:
        raise ValueError(
            f"rewards and dones must have the same shape, got rewards {tuple(rewards.shape)} "
            f"and dones {tuple(dones.shape)}"
        )
    if rewards.ndim not in (1, 2) or rewards.shape[0] == 0:
        raise ValueError(f"rewards must have shape (T,) or (T, N) with T >= 1, got {tuple(rewards.shape)}")
    check_float("rewards", rewards)
    check_finite("rewards", rewards)
    check_binary("dones", dones)
    check_number("gamma", gamma, low=0.0, high=1.0, fix="use e.g. 0.99 (1.0 for undiscounted returns)")


def reward_to_go(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted reward-to-go ``G_t = r_t + gamma r_{t+1} + ...`` up to the end of t's episode.

    Args:
        rewards: ``(T,)`` or ``(T, N)`` floats (N parallel streams, time along dim 0).
        dones: same shape, 0/1 (or bool); ``dones[t] == 1`` means the episode ended at step t, so
            ``G_t = r_t`` and nothing flows back from step t+1. The last step of the batch is
            treated as an episode end (no bootstrap).
        gamma: discount in [0, 1].

    Returns:
        ``G``, same shape and dtype as ``rewards`` (summed in float64).

    Raises ``TypeError`` for integer rewards and ``ValueError`` for NaN/inf rewards, dones other
    than 0/1, mismatched shapes or a gamma outside [0, 1].
    """
    check_rewards_dones(rewards, dones, gamma)
    r = rewards.detach().cpu().double().numpy()
    notdone = 1.0 - dones.detach().cpu().double().numpy()
    out = np.zeros_like(r)
    running = np.zeros_like(r[0])
    for t in range(r.shape[0] - 1, -1, -1):
        running = r[t] + gamma * notdone[t] * running
        out[t] = running
    return torch.as_tensor(out, dtype=rewards.dtype, device=rewards.device)


def full_return(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """The discounted return of each step's *whole* episode, ``G_0 = sum_k gamma^k r_k``.

    Every step of an episode gets the same number (the "full return" weight of the original
    REINFORCE estimator). Shapes, checks and episode boundaries as in :func:`reward_to_go`.
    """
    rtg = reward_to_go(rewards, dones, gamma)
    flat = rtg.ndim == 1
    g = rtg.unsqueeze(1) if flat else rtg
    d = (dones.unsqueeze(1) if flat else dones).bool()
    out = torch.empty_like(g)
    for n in range(g.shape[1]):
        start = 0
        for t in range(g.shape[0]):
            if d[t, n] or t == g.shape[0] - 1:
                out[start : t + 1, n] = g[start, n]
                start = t + 1
    return out.squeeze(1) if flat else out


def reinforce_loss(logp: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate loss ``-mean(log pi(a_t|s_t) * Psi_t)``, a scalar.

    Its gradient is minus the policy-gradient estimate, so gradient *descent* on it is ascent on J.
    ``weights`` (``Psi_t``: returns, rewards-to-go or advantages) are treated as constants.

    Args:
        logp: ``(B,)`` float log-probabilities of the actions taken, with a graph to the policy.
        weights: ``(B,)`` floats, all finite.
    """
    if not isinstance(logp, torch.Tensor) or not isinstance(weights, torch.Tensor):
        raise TypeError(
            f"logp and weights must be torch.Tensors, got {type(logp).__name__} and {type(weights).__name__}"
        )
    if logp.ndim != 1 or logp.shape != weights.shape:
        raise ValueError(
            f"logp and weights must both have shape (B,), got logp {tuple(logp.shape)} "
            f"and weights {tuple(weights.shape)}"
        )
    if logp.shape[0] == 0:
        raise ValueError("reinforce_loss got an empty batch (B = 0)")
    check_float("weights", weights)
    check_finite("weights", weights)
    check_finite("logp", logp)
    return -(logp * weights.detach()).mean()
