"""DAPO's overlong handling: a soft length penalty added to the reward, and masking truncated completions (chapter 11).

A completion that hits ``max_new_tokens`` before ``<eos>`` is *truncated*: the task's rule-based reward
gives it 0 even when its prefix was fine, so its tokens are pushed down for being cut, not for being
wrong. DAPO (Yu et al. 2025, section 3.4) offers two fixes, both in TRL:

- :func:`mask_truncated_completions` (TRL ``GRPOConfig(mask_truncated_completions=True)``): such
  completions are excluded from the loss;
- :func:`soft_overlong_punishment` (TRL ``trl.rewards.get_soft_overlong_punishment``): a penalty that
  grows linearly over the last ``soft_punish_cache`` tokens before the limit, added to the reward
  (:func:`with_soft_overlong_punishment` wraps a reward function).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.checks import check_binary, check_int


def mask_truncated_completions(completion_mask: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """``completion_mask (B, T)`` with the rows of unfinished completions (no ``<eos>``) set to 0.

    finished: ``(B,)`` bool, True where the completion emitted ``<eos>`` (``Rollout.finished``).
    """
    if completion_mask.dim() != 2:
        raise ValueError(f"completion_mask must have shape (B, T), got {tuple(completion_mask.shape)}")
    if finished.shape != (completion_mask.shape[0],):
        raise ValueError(
            f"finished must have shape (B,) = ({completion_mask.shape[0]},), got {tuple(finished.shape)}"
        )
    check_binary("finished", finished)
    return completion_mask * finished.to(completion_mask.dtype).unsqueeze(1)


def soft_overlong_punishment(
    completion_lengths: torch.Tensor, max_completion_length: int, soft_punish_cache: int
) -> torch.Tensor:
    """DAPO's Eq. 13, the same numbers as TRL's ``get_soft_overlong_punishment``: ``(B,) -> (B,)`` float.

    0 up to ``L_max - L_cache`` tokens, then falling linearly to -1 at ``L_max``, -1 beyond.
    completion_lengths: tokens per completion, ``<eos>`` included (``Rollout.completion_lengths``).
    """
    check_int("max_completion_length", max_completion_length, low=1)
    check_int("soft_punish_cache", soft_punish_cache, low=0, high=max_completion_length)
    n = completion_lengths.float()
    start = max_completion_length - soft_punish_cache
    ramp = (start - n) / max(soft_punish_cache, 1)
    out = torch.where(n <= start, torch.zeros_like(n), ramp)
    return torch.where(n > max_completion_length, torch.full_like(n, -1.0), out)


def with_soft_overlong_punishment(
    reward_fn: Callable, max_completion_length: int, soft_punish_cache: int
) -> Callable:
    """A reward function ``rollout -> reward_fn(rollout) + soft_overlong_punishment(lengths)``."""
    check_int("soft_punish_cache", soft_punish_cache, low=0, high=max_completion_length)

    def rewards(rollout) -> torch.Tensor:
        base = reward_fn(rollout)
        return base + soft_overlong_punishment(
            rollout.completion_lengths, max_completion_length, soft_punish_cache
        ).to(base.device)

    rewards.__qualname__ = f"{getattr(reward_fn, '__qualname__', 'reward_fn')}+soft_overlong_punishment"
    return rewards
