"""GRPO on many processes: what changes when each rank trains on a share of the prompts (chapter 12).

Three things make a data-parallel run equal to a single-process run of the same global batch:

1. every rank samples the same global prompts (same seed) and keeps its block (:func:`rlcourse.distributed.shard`);
2. each prompt's group is sampled with its own generator (:func:`prompt_seeds`, :func:`sample_per_prompt`),
   so its completions do not depend on which rank samples it;
3. each rank's loss is scaled by its share of the GLOBAL normaliser (:func:`global_loss_scale`) before
   the gradients are summed over ranks (:func:`rlcourse.distributed.all_reduce_grads`).

Logged statistics are reduced over ranks (:func:`global_stats`). DAPO's dynamic sampling is refused
(:func:`check_data_parallel`): its resampling rounds depend on each rank's own groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlcourse import distributed
from rlcourse.grpo.config import GRPOConfig
from rlcourse.grpo.sampling import concat_rollouts
from rlcourse.lm.generate import Rollout, generate


def prompt_seeds(seed: int, step: int, n_prompts: int) -> list[int]:
    """One sampling seed per prompt of a step, mixed from ``(seed, step, prompt index)`` (chapter 12).

    With a generator per prompt, a prompt's G completions are the same whichever rank samples it, so a
    run on 2 ranks trains on exactly the batch a 1-rank run does.
    """
    return [int(np.random.SeedSequence([seed, step, i]).generate_state(1)[0]) for i in range(n_prompts)]


def sample_per_prompt(
    policy, tokenizer, prompts: Sequence[str], seeds: Sequence[int], cfg: GRPOConfig
) -> Rollout:
    """G completions for each prompt, each group from its own generator seeded by ``seeds[i]``.

    Slower than one batched :func:`generate` (one call per prompt), but a prompt's completions no longer
    depend on which other prompts share the batch. Returns one :class:`Rollout`, groups contiguous.
    """
    device = next(policy.parameters()).device
    rollouts = [
        generate(
            policy,
            tokenizer,
            [p],
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            num_samples=cfg.group_size,
            generator=torch.Generator(device=device).manual_seed(s),
        )
        for p, s in zip(prompts, seeds, strict=True)
    ]
    return concat_rollouts(rollouts, tokenizer.pad_token_id)


def global_loss_scale(loss_type: str, mask: torch.Tensor) -> float:
    """This rank's share of the loss's normaliser: ``local / sum over ranks`` (1.0 in a single process).

    ``"grpo"`` and ``"dr_grpo"`` divide by the number of completions B; ``"bnpo"``, ``"dapo"`` and ``"cispo"``
    by the number of completion tokens. A rank's loss, normalised by its own count and multiplied by
    this share, is its part of the global loss, so the gradients summed over ranks are the global gradient.
    mask: ``(B, T)`` completion mask of this rank's batch.
    """
    local = float(mask.shape[0]) if loss_type in ("grpo", "dr_grpo") else mask.float().sum().item()
    total = distributed.all_reduce_sum(local)
    return local / total if total > 0 else 0.0


def check_data_parallel(cfg: GRPOConfig, world_size: int) -> None:
    """Refuse what cannot run data-parallel exactly: an indivisible batch, dynamic sampling."""
    if cfg.prompts_per_step % world_size:
        k = max(1, cfg.prompts_per_step // world_size)
        raise ValueError(
            f"GRPOConfig.prompts_per_step={cfg.prompts_per_step} is not divisible by the number of ranks "
            f"({world_size}); every rank must get the same share of prompts: use a multiple of {world_size}, "
            f"e.g. prompts_per_step={world_size * k}"
        )
    if cfg.dynamic_sampling:
        raise ValueError(
            "GRPOConfig.dynamic_sampling=True cannot run data-parallel: each rank would resample its own "
            "all-equal groups a different number of rounds, so the batch would depend on the number of "
            "ranks; set dynamic_sampling=False, or run it in a single process"
        )


def global_stats(stats: dict, scale: float, m: torch.Tensor, rows: int, groups: int) -> dict:
    """The step's statistics over ALL ranks' batches: token means weighted by tokens, row means by rows.

    The loss is a sum: each rank's scaled loss is its part of the global loss (:func:`global_loss_scale`).
    """
    tokens = m.sum().item()
    by_tokens = ("entropy", "clipfrac", "clip_ratio_region", "kl")
    values = {
        k: stats[k] for k in (*by_tokens, "reward", "length", "frac_truncated", "kl_seq", "frac_all_equal")
    }
    weights = {k: tokens for k in by_tokens}
    weights.update(reward=rows, length=rows, frac_truncated=rows, kl_seq=rows if tokens > 0 else 0)
    weights["frac_all_equal"] = groups
    out = distributed.weighted_means(values, weights)
    parts = torch.tensor(
        [
            stats["loss"] * scale if tokens > 0 else 0.0,
            float(tokens > 0),
            stats["groups_generated"],
            stats["groups_kept"],
        ],
        dtype=torch.float64,
    )
    loss, ranks_with_tokens, generated, kept = distributed.all_reduce_sum(parts).tolist()
    out["loss"] = loss if ranks_with_tokens > 0 else float("nan")
    out["groups_generated"], out["groups_kept"] = round(generated), round(kept)
    return out
