"""From rlcourse to TRL: the config field map, configs built from ours, the course reward in TRL's form (chapter 12).

Chapter 12 trains the shipped models with TRL 1.16's ``GRPOTrainer`` / ``DPOTrainer`` next to
:func:`rlcourse.grpo.train_grpo` / :func:`rlcourse.dpo.train_dpo`; ``recipes/grpo_trl.py`` runs the same
GRPO on any model. Everything they share lives here (:mod:`~rlcourse.trl_bridge.config`, :mod:`~rlcourse.trl_bridge.trainers`):

- ``GRPO_FIELDS`` / ``DPO_FIELDS``: every TRL config field we set, its rlcourse counterpart, and why, as data
  (the notebook prints them as a table; the tests check the configs below follow them).
- :func:`trl_grpo_config` / :func:`trl_dpo_config`: a TRL config with the same settings as an rlcourse config.
- :func:`course_reward`: :meth:`ArithmeticTask.score` as a TRL reward function.
- :func:`step_timer` and :func:`trl_history`: per-step wall time and TRL's logged metrics as a history dict.

TRL is imported inside the functions (it is a dev dependency; ``import rlcourse.trl_bridge`` works without it).
"""

from rlcourse.trl_bridge.config import DPO_FIELDS, GRPO_FIELDS, trl_dpo_config, trl_grpo_config
from rlcourse.trl_bridge.trainers import (
    chat_prompt,
    course_reward,
    make_dpo_trainer,
    make_grpo_trainer,
    step_timer,
    trl_history,
    trl_ready,
)

__all__ = [
    "DPO_FIELDS",
    "GRPO_FIELDS",
    "chat_prompt",
    "course_reward",
    "make_dpo_trainer",
    "make_grpo_trainer",
    "step_timer",
    "trl_dpo_config",
    "trl_grpo_config",
    "trl_history",
    "trl_ready",
]
