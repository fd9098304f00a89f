"""Proximal Policy Optimization, PPO (近端策略优化) -- derived in chapter 04 (04_ppo_gae).

The losses (used on CartPole here and on a language model's tokens in ``rlcourse.rlhf``):

- :func:`clipped_surrogate_loss` -- PPO-clip (裁剪): ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))``
  with the probability ratio ``r = pi_new(a|s) / pi_old(a|s)``.
- :func:`kl_penalty_loss` and :func:`adaptive_kl_beta` -- PPO-penalty: ``-mean(r A) + beta KL``,
  with beta halved or doubled after each update to keep the KL near a target.
- :func:`clipped_value_loss` -- the value function's (价值函数) squared error, with its change
  clipped like the ratio (CleanRL's and TRL's form, with the 1/2).
- :func:`approx_kl` -- ``mean((r - 1) - log r)``, an estimate of KL(pi_old || pi_new) that is never
  negative (the "k3" estimator CleanRL logs).

Neither loss bounds the KL of an update: clipping only removes the incentive to move a ratio
further, and 20 epochs of steps can still move the policy far (chapter 04 measures it).
``PPOConfig.target_kl`` is the usual remedy (CleanRL's early stop of an update's epochs).

The trainer, :func:`train_ppo` with :class:`PPOConfig` (every field checked when built) and
:class:`PPOResult` (the run's history), is CleanRL's single-file PPO for discrete gymnasium
environments, with Stable-Baselines3's choices where they differ.

Modules: :mod:`~rlcourse.ppo.losses`, :mod:`~rlcourse.ppo.config`, :mod:`~rlcourse.ppo.train`.
"""

from rlcourse.ppo.config import PPOConfig, PPOResult
from rlcourse.ppo.losses import (
    adaptive_kl_beta,
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    kl_penalty_loss,
)
from rlcourse.ppo.train import make_vector_env, train_ppo

__all__ = [
    "PPOConfig",
    "PPOResult",
    "adaptive_kl_beta",
    "approx_kl",
    "clipped_surrogate_loss",
    "clipped_value_loss",
    "kl_penalty_loss",
    "make_vector_env",
    "train_ppo",
]
