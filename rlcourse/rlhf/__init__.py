"""PPO for a language model, RLHF-style (chapter 07): per-token rewards, GAE over tokens, the ten steps.

Seed 004 section 4.1 lists ten steps; each has one function here so that notebook 07 can run them
one cell at a time (the trainer :func:`train_ppo` simply calls them in order):

 1. :func:`sample_completions`   -- sample completions with the actor (策略模型 / policy).
 2. :func:`score_completions` + :func:`per_token_rewards` -- reward-model (奖励模型) score on the last
    real token, plus a per-token KL penalty (KL 散度) to the frozen reference model (参考模型).
 3. :func:`critic_values`        -- the critic (价值模型) gives V_old for every token.
 4. :func:`token_gae`            -- advantages (优势) with GAE (广义优势估计) over the completion tokens.
 5. :func:`policy_ratio`         -- r = pi / pi_old from a fresh forward pass.
 6-7. :func:`ppo_policy_loss`    -- push r up where A > 0, down where A < 0, with r clipped (裁剪) to
    [1 - eps, 1 + eps] (``rlcourse.ppo.clipped_surrogate_loss`` on the completion tokens).
 8. :func:`ppo_value_loss`       -- clipped value loss towards R = A + V_old.
 9. :func:`ppo_update`           -- one optimiser step on actor and critic.
10. :func:`ppo_epochs`           -- steps 5-9 for several epochs on the batch; then the next batch.

Two policies are in play, and they are not the same: ``pi_old`` is the policy that sampled *this*
batch (the ratio and its clip -- PPO's trust region, 信赖域 -- are measured against it, and it moves
every batch), while ``pi_ref`` is the frozen SFT model (参考模型) that the KL penalty in the reward
anchors the policy to for the whole run.

The package, data flowing one way (trainer -> steps -> loss, and all of them -> ``rlcourse.lm``):

- :mod:`rlcourse.rlhf.config` -- :class:`RLHFConfig` (checked when built), ``HISTORY_KEYS``;
- :mod:`rlcourse.rlhf.loss` -- pure tensor maths: :func:`per_token_rewards`, :func:`token_gae`,
  :func:`masked_whiten`, :func:`last_token_index`, :func:`ppo_policy_loss`, :func:`ppo_value_loss`;
- :mod:`rlcourse.rlhf.steps` -- the steps that call models, :class:`PPOBatch`, :func:`make_batch`,
  :func:`ppo_epochs`, :func:`make_critic`, :func:`load_rlhf_models`;
- :mod:`rlcourse.rlhf.trainer` -- :func:`train_ppo`.

Token alignment. ``rlcourse.lm.logprobs.token_logprobs`` returns (B, T-1): column j scores token j+1
of ``input_ids`` (B, T). Everything per token here lives on that grid of *actions*: the action mask is
``shift_mask(rollout.completion_mask)`` = ``completion_mask[:, 1:]``, the value of the state before action j is
the critic's output at position j, and the reward-model score lands on the last column where the action
mask is 1 -- the ``<eos>`` or the last generated token, never a pad (TRL #3750 put it one past the end).
"""

from rlcourse.rlhf.config import HISTORY_KEYS, RLHFConfig
from rlcourse.rlhf.loss import (
    check_mask,
    last_token_index,
    masked_whiten,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    token_gae,
)
from rlcourse.rlhf.steps import (
    PPOBatch,
    check_rewards,
    critic_values,
    load_rlhf_models,
    make_batch,
    make_critic,
    policy_ratio,
    ppo_epochs,
    ppo_update,
    rollout_logprobs,
    sample_completions,
    score_completions,
)
from rlcourse.rlhf.trainer import train_ppo

_check_mask = check_mask  # the name before the split into a package

__all__ = [
    "HISTORY_KEYS",
    "PPOBatch",
    "RLHFConfig",
    "check_rewards",
    "critic_values",
    "last_token_index",
    "load_rlhf_models",
    "make_batch",
    "make_critic",
    "masked_whiten",
    "per_token_rewards",
    "policy_ratio",
    "ppo_epochs",
    "ppo_policy_loss",
    "ppo_update",
    "ppo_value_loss",
    "rollout_logprobs",
    "sample_completions",
    "score_completions",
    "token_gae",
    "train_ppo",
]
