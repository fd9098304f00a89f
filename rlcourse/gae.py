"""Generalized advantage estimation, GAE (广义优势估计) -- derived in chapter 04 (04_ppo_gae).

With the one-step TD error (时序差分误差)

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)

the GAE advantage (优势) is the exponentially weighted sum of the TD errors that follow step t,

    A_t = sum_{k >= 0} (gamma * lam)^k * delta_{t+k}      (stopping at the end of the episode),

computed backwards in one pass: A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}.
``lam = 0`` gives the one-step TD error (low variance, biased by V); ``lam = 1`` gives the
discounted Monte Carlo return minus V(s_t) (unbiased, high variance). ``returns = A + V`` are the
targets of the value function (价值函数).

Convention: ``dones[t] == 1`` means the episode ended *at* step t (the transition from s_t ended
it), so nothing is bootstrapped from s_{t+1}. Rollouts from vector environments have shape (T, N):
T steps of N environments; the LM track (``rlcourse.rlhf``) uses (T,) or (T, N) over tokens.
"""

from __future__ import annotations

import torch

__all__ = ["compute_gae", "td_errors"]


def _check(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor
) -> None:
    for name, x in (("rewards", rewards), ("values", values), ("dones", dones), ("last_value", last_value)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(
                f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor"
            )
    if rewards.dim() not in (1, 2) or rewards.shape[0] == 0:
        raise ValueError(f"rewards must have shape (T,) or (T, N) with T >= 1, got {tuple(rewards.shape)}")
    if values.shape != rewards.shape or dones.shape != rewards.shape:
        raise ValueError(
            "rewards, values and dones must have the same shape, got "
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, dones {tuple(dones.shape)}"
        )
    if last_value.shape != rewards.shape[1:]:
        raise ValueError(
            f"last_value must be V(s_T) with shape {tuple(rewards.shape[1:])} (one value per environment), "
            f"got {tuple(last_value.shape)} for rewards of shape {tuple(rewards.shape)}"
        )


def td_errors(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float
) -> torch.Tensor:
    """One-step TD errors delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t).

    Shapes: rewards, values, dones (T,) or (T, N); last_value () or (N,) -> (T,) or (T, N).
    """
    _check(rewards, values, dones, last_value)
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)])
    return rewards + gamma * next_values * (1.0 - dones.to(values.dtype)) - values


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(gamma, lam) advantages and value targets of one rollout.

    Args:
        rewards: r_t, shape (T,) or (T, N).
        values: V(s_t) under the policy that collected the rollout, same shape.
        dones: 1 where the episode ended at step t (float or bool), same shape.
        last_value: V(s_T), the value of the observation after the last step, shape () or (N,).
        gamma: discount factor in [0, 1].
        lam: GAE lambda in [0, 1]; 0 = one-step TD error, 1 = Monte Carlo return minus V.

    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``; ``returns = advantages + values``.
        Computed without gradients flowing into ``values`` (they are targets).
    """
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gamma and lam must lie in [0, 1], got gamma={gamma}, lam={lam}")
    with torch.no_grad():
        deltas = td_errors(rewards, values, dones, last_value, gamma)
        not_done = 1.0 - dones.to(values.dtype)
        advantages = torch.empty_like(deltas)
        running = torch.zeros_like(last_value, dtype=deltas.dtype)
        for t in reversed(range(deltas.shape[0])):
            running = deltas[t] + gamma * lam * not_done[t] * running
            advantages[t] = running
        return advantages, advantages + values
