"""GRPO: Group Relative Policy Optimization (chapter 08 derives it; chapter 11 its variants; chapter 10 compares).

GRPO (DeepSeekMath, Shao et al. 2024) is PPO's clipped objective with the value model (critic,
价值模型) removed: for every prompt the policy samples a *group* of G completions, each completion is
scored by a reward function, and the advantage (优势) of completion i is its reward relative to its
own group, ``A_i = (r_i - mean(r_group)) / (std(r_group) + eps)``. Every token of completion i gets
the same ``A_i`` (outcome supervision). The KL divergence (KL 散度) to the frozen reference model
(参考模型) is a term of the *loss*, estimated per token with k3, not a penalty folded into the reward
as in chapter 07's PPO.

Conventions, and where they agree with TRL 1.16's ``GRPOTrainer`` / ``RLOOTrainer`` (checked to 1e-5
in ``tests/test_trl_parity.py`` and ``tests/test_trl_parity_variants.py``):

- std uses Bessel's correction (N - 1 in the denominator), like TRL's ``nanstd``; eps = 1e-4.
- ``scale=False`` is TRL's ``scale_rewards="none"`` (Dr. GRPO: no std division).
- ``loss_type`` "grpo", "bnpo", "dr_grpo", "dapo", "cispo"; ``clip_eps_high`` (TRL ``epsilon_high``),
  ``importance_sampling_level`` ("sequence" = GSPO), ``delta`` (two-sided clip), as TRL.
- "dr_grpo" divides by ``B * max_completion_length``; the trainer passes ``max_new_tokens``.
- TRL divides the logits by the sampling temperature before computing log-probs; so do we.

Modules: :mod:`~rlcourse.grpo.advantages` (``group_advantages``, ``rloo_advantages``,
``all_equal_fraction``), :mod:`~rlcourse.grpo.loss` (``grpo_loss``, ``token_weights``,
``importance_ratio``), :mod:`~rlcourse.grpo.overlong` (DAPO's overlong handling),
:mod:`~rlcourse.grpo.sampling` (DAPO's dynamic sampling), :mod:`~rlcourse.grpo.config`
(``GRPOConfig``), :mod:`~rlcourse.grpo.step` (``grpo_step``, ``state_memory_mb``, ``make_adam``),
:mod:`~rlcourse.grpo.trainer` (``train_grpo``), :mod:`~rlcourse.grpo.parallel` (data parallel under torchrun:
``prompt_seeds``, ``sample_per_prompt``, ``global_loss_scale``, ``check_data_parallel``; chapter 12;
``python -m rlcourse.grpo --help``). Every public name is importable from ``rlcourse.grpo``.
"""

from rlcourse.grpo.advantages import (
    all_equal_fraction,
    check_reward_output,
    equal_groups,
    group_advantages,
    rloo_advantages,
)
from rlcourse.grpo.config import ADVANTAGE_ESTIMATORS, GRPOConfig
from rlcourse.grpo.loss import (
    IS_LEVELS,
    LOSS_TYPES,
    grpo_loss,
    importance_ratio,
    per_token_grpo_loss,
    token_weights,
)
from rlcourse.grpo.overlong import (
    mask_truncated_completions,
    soft_overlong_punishment,
    with_soft_overlong_punishment,
)
from rlcourse.grpo.parallel import check_data_parallel, global_loss_scale, prompt_seeds, sample_per_prompt
from rlcourse.grpo.sampling import concat_rollouts, dynamic_sample, select_rows
from rlcourse.grpo.step import grpo_step, logprobs_and_entropy, make_adam, state_memory_mb
from rlcourse.grpo.trainer import HISTORY_KEYS, train_grpo

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "HISTORY_KEYS",
    "IS_LEVELS",
    "LOSS_TYPES",
    "GRPOConfig",
    "all_equal_fraction",
    "check_data_parallel",
    "check_reward_output",
    "concat_rollouts",
    "dynamic_sample",
    "equal_groups",
    "global_loss_scale",
    "group_advantages",
    "grpo_loss",
    "grpo_step",
    "importance_ratio",
    "logprobs_and_entropy",
    "make_adam",
    "mask_truncated_completions",
    "per_token_grpo_loss",
    "prompt_seeds",
    "rloo_advantages",
    "sample_per_prompt",
    "select_rows",
    "soft_overlong_punishment",
    "state_memory_mb",
    "token_weights",
    "train_grpo",
    "with_soft_overlong_punishment",
]
