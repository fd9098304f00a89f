"""DAPO's dynamic sampling: drop the groups whose rewards are all equal, sample more prompts until full (chapter 11).

TRL does not implement it. A group with all-equal rewards has zero advantage and gives no policy
gradient, yet it costs a full set of G completions and shrinks the *effective* batch. DAPO (Yu et al.
2025, section 3.2) over-samples and keeps only groups with a spread. Here: sample ``n_prompts``
prompts, keep the informative groups, and sample another round of ``n_prompts`` while the batch is
not full and fewer than ``max_rounds`` extra rounds were spent (the cap on extra sampling). The
caller reports how many groups were generated and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from rlcourse.grpo.advantages import check_reward_output, equal_groups
from rlcourse.lm.generate import Rollout


def select_rows(rollout: Rollout, rows: torch.Tensor) -> Rollout:
    """The rows ``rows`` (long indices) of ``rollout`` as a new Rollout."""
    rows = rows.to(rollout.input_ids.device)
    r = rows.tolist()
    return replace(
        rollout,
        input_ids=rollout.input_ids[rows],
        attention_mask=rollout.attention_mask[rows],
        completion_mask=rollout.completion_mask[rows],
        prompt_index=rollout.prompt_index[rows],
        finished=rollout.finished[rows],
        completions=[rollout.completions[i] for i in r],
        texts=[rollout.texts[i] for i in r],
    )


def concat_rollouts(rollouts: list[Rollout], pad_token_id: int) -> Rollout:
    """Stack rollouts row-wise: prompts re-aligned by left padding, completions padded on the right."""
    if not rollouts:
        raise ValueError("concat_rollouts needs at least one rollout")
    if len(rollouts) == 1:
        return rollouts[0]
    P = max(r.prompt_length for r in rollouts)
    C = max(r.input_ids.shape[1] - r.prompt_length for r in rollouts)

    def pad(x: torch.Tensor, r: Rollout, value: int) -> torch.Tensor:
        left, right = P - r.prompt_length, C - (x.shape[1] - r.prompt_length)
        return torch.nn.functional.pad(x, (left, right), value=value)

    offsets, prompts = [], []
    for r in rollouts:
        offsets.append(len(prompts))
        prompts += list(r.prompts)
    return Rollout(
        input_ids=torch.cat([pad(r.input_ids, r, pad_token_id) for r in rollouts]),
        attention_mask=torch.cat([pad(r.attention_mask, r, 0) for r in rollouts]),
        completion_mask=torch.cat([pad(r.completion_mask, r, 0) for r in rollouts]),
        prompt_index=torch.cat([r.prompt_index + o for r, o in zip(rollouts, offsets, strict=True)]),
        finished=torch.cat([r.finished for r in rollouts]),
        prompts=prompts,
        completions=[c for r in rollouts for c in r.completions],
        texts=[t for r in rollouts for t in r.texts],
        prompt_length=P,
        num_samples=rollouts[0].num_samples,
    )


def dynamic_sample(
    sample_round: Callable[[int], Rollout],
    reward_fn: Callable[[Rollout], torch.Tensor],
    n_prompts: int,
    group_size: int,
    max_rounds: int,
    pad_token_id: int,
    call=lambda fn, role, *a: fn(*a),
) -> tuple[Rollout, torch.Tensor, dict]:
    """Fill a batch of ``n_prompts`` groups with a reward spread, in at most ``1 + max_rounds`` rounds.

    Args:
        sample_round: ``k -> Rollout`` of k fresh prompts x G completions (each prompt's rows contiguous).
        reward_fn: ``Rollout -> (rows,)`` float rewards.
        n_prompts: groups wanted; group_size: G; max_rounds: extra rounds allowed after the first.
        call: how to call a user function (the trainer passes :func:`rlcourse.checks.call_user`).

    Returns:
        ``(rollout, rewards, info)``: the kept groups (at most ``n_prompts``; fewer when the cap was hit,
        possibly none) and ``info`` with ``groups_generated``, ``groups_kept``, ``rounds``, and the
        all-equal fraction of everything generated, ``frac_all_equal``.
    """
    kept, kept_rewards, generated, n_equal, rounds = [], [], 0, 0, 0
    while rounds <= max_rounds and sum(len(r) for r in kept) < n_prompts * group_size:
        roll = sample_round(n_prompts)
        rewards = check_reward_output(call(reward_fn, "reward function", roll), len(roll), reward_fn)
        equal = equal_groups(rewards, group_size)
        generated, n_equal, rounds = generated + len(equal), n_equal + int(equal.sum()), rounds + 1
        rows = (~equal).repeat_interleave(group_size).nonzero().squeeze(1)
        if len(rows):
            kept.append(select_rows(roll, rows))
            kept_rewards.append(rewards[rows])
    if not kept:  # every group was all-equal: return the last round (zero advantages, no policy gradient)
        kept, kept_rewards = [roll], [rewards]
    rollout = concat_rollouts(kept, pad_token_id)
    rewards = torch.cat(kept_rewards)
    n_keep = min(len(rollout), n_prompts * group_size)
    if n_keep < len(rollout):
        rollout, rewards = select_rows(rollout, torch.arange(n_keep)), rewards[:n_keep]
    groups_kept = n_keep // group_size - (int(equal_groups(rewards, group_size).sum()))
    info = {
        "groups_generated": generated,
        "groups_kept": groups_kept,
        "rounds": rounds,
        "frac_all_equal": n_equal / generated,
    }
    return rollout, rewards, info
