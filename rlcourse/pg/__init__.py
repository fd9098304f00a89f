"""Policy gradient and REINFORCE (chapter 02, ``notebooks/02_policy_gradient.ipynb``).

The chapter derives, with the log-derivative trick, the gradient of the expected discounted return
``J(theta) = E[sum_t gamma^t r_t]``:

    grad J(theta) = E_tau[ sum_t grad log pi_theta(a_t | s_t) * Psi_t ].

Exact choices of the weight ``Psi_t`` are the full discounted return ``R(tau)`` of the episode,
``gamma^t G_t`` (the reward-to-go from step t, discounted back to the start; earlier rewards cannot
depend on a_t), and ``gamma^t (G_t - b(s_t))`` for any baseline b that ignores a_t. For
``gamma = 1`` the factor ``gamma^t`` is 1, and the full return, the reward-to-go and the
reward-to-go minus a learned V(s_t) all have the same expectation; they differ in variance, which
:func:`gradient_variance` measures. Practice (Spinning Up, CleanRL, this package's trainers) drops
``gamma^t`` and weights by ``G_t`` with ``gamma < 1``: that weights late steps more than the discounted
objective does, so it is not the exact gradient of J (chapter 02 computes the difference exactly on
a small chain); gamma then acts as a horizon that cuts variance.

Modules: :mod:`~rlcourse.pg.returns` (reward-to-go, full return, the loss),
:mod:`~rlcourse.pg.rollouts` (whole episodes from vectorised envs, value fitting),
:mod:`~rlcourse.pg.reinforce` (config and trainer), :mod:`~rlcourse.pg.variance` (the measurement).
"""

from rlcourse.pg.reinforce import (
    ReinforceConfig,
    TrainHistory,
    check_bool,
    check_common_fields,
    policy_weights,
    train_reinforce,
)
from rlcourse.pg.returns import check_rewards_dones, full_return, reinforce_loss, reward_to_go
from rlcourse.pg.rollouts import EpisodeBatch, collect_episodes, fit_value, make_envs
from rlcourse.pg.variance import ScaledValue, fit_baseline, gradient_samples, gradient_variance

__all__ = [
    "EpisodeBatch",
    "ReinforceConfig",
    "ScaledValue",
    "TrainHistory",
    "check_bool",
    "check_common_fields",
    "check_rewards_dones",
    "collect_episodes",
    "fit_baseline",
    "fit_value",
    "full_return",
    "gradient_samples",
    "gradient_variance",
    "make_envs",
    "policy_weights",
    "reinforce_loss",
    "reward_to_go",
    "train_reinforce",
]
