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

from rlcourse.checks import check_binary, check_finite, check_number

__all__ = ["compute_gae", "td_errors"]


def _check(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes, dones in {0, 1} and finiteness; return the inputs in one floating dtype."""
    for name, x in (("rewards", rewards), ("values", values), ("dones", dones), ("last_value", last_value)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(
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
    check_binary("dones", dones)
    # integer rewards (e.g. +1 per step) are computed in floating point, never in integer arithmetic
    dtype = torch.promote_types(rewards.dtype, torch.promote_types(values.dtype, last_value.dtype))
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    rewards, values, last_value = rewards.to(dtype), values.to(dtype), last_value.to(dtype)
    for name, x in (("rewards", rewards), ("values", values), ("last_value", last_value)):
        check_finite(name, x)
    return rewards, values, dones.to(dtype), last_value


def _check_gamma(**numbers: float) -> None:
    fixes = {"gamma": "use e.g. 0.99", "lam": "use e.g. 0.95 (0 = TD error, 1 = Monte Carlo)"}
    for name, x in numbers.items():
        check_number(name, x, low=0.0, high=1.0, fix=fixes[name])


def td_errors(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float
) -> torch.Tensor:
    """One-step TD errors delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t).

    Shapes: rewards, values, dones (T,) or (T, N); last_value () or (N,) -> (T,) or (T, N).
    """
    _check_gamma(gamma=gamma)
    return _deltas(*_check(rewards, values, dones, last_value), gamma)


def _deltas(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float
) -> torch.Tensor:
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)])
    return rewards + gamma * next_values * (1.0 - dones) - values


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
        rewards: r_t, shape (T,) or (T, N); integer rewards are converted to floating point.
        values: V(s_t) under the policy that collected the rollout, same shape.
        dones: 1 where the episode ended at step t (float, int or bool; only 0 and 1), same shape.
        last_value: V(s_T), the value of the observation after the last step, shape () or (N,).
        gamma: discount factor in [0, 1].
        lam: GAE lambda in [0, 1]; 0 = one-step TD error, 1 = Monte Carlo return minus V.

    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``; ``returns = advantages + values``.
        Computed without gradients flowing into ``values`` (they are targets).

    Raises:
        ValueError: NaN or inf in rewards, values or last_value (naming the tensor and the first
            index), dones other than 0/1, gamma or lam outside [0, 1], mismatched shapes.
    """
    _check_gamma(gamma=gamma, lam=lam)
    with torch.no_grad():
        rewards, values, dones, last_value = _check(rewards, values, dones, last_value)
        deltas = _deltas(rewards, values, dones, last_value, gamma)
        not_done = 1.0 - dones
        advantages = torch.empty_like(deltas)
        running = torch.zeros_like(last_value, dtype=deltas.dtype)
        for t in reversed(range(deltas.shape[0])):
            running = deltas[t] + gamma * lam * not_done[t] * running
            advantages[t] = running
        return advantages, advantages + values
