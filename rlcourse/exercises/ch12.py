"""Checkers for chapter 12 (scaling up): a rank's share of the loss, and ZeRO's memory per GPU.

Reference answers: the formulas of :func:`rlcourse.grpo.parallel.global_loss_scale` (the trainer's data
parallelism) and :func:`rlcourse.comparison.zero_state_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.comparison import zero_state_bytes
from rlcourse.exercises import Case, CheckResult, check


def reference_rank_loss(token_loss: torch.Tensor, mask: torch.Tensor, rank: int, world: int, loss_type: str):
    """Rank ``rank``'s part of the global loss; rows ``[rank * N / world, (rank + 1) * N / world)`` are its share."""
    n = token_loss.shape[0]
    k = n // world
    rows = slice(rank * k, (rank + 1) * k)
    m, loss = mask[rows].float(), token_loss[rows]
    if loss_type == "grpo":  # each completion's token mean, averaged over the GLOBAL number of completions
        return ((loss * m).sum(1) / m.sum(1).clamp(min=1)).sum() / n
    return (loss * m).sum() / mask.float().sum().clamp(min=1)  # "bnpo": over the GLOBAL number of tokens


def _rank_loss_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    loss = torch.randn(8, 5, generator=g)
    lengths = torch.tensor([1, 5, 2, 5, 3, 1, 4, 2])  # rank 0 of 2 holds 13 tokens, rank 1 holds 10
    mask = (torch.arange(5)[None] < lengths[:, None]).long()
    cases = []
    for loss_type in ("grpo", "bnpo"):
        for rank, world in ((0, 1), (0, 2), (1, 2), (3, 4)):
            name = f"{loss_type}, rank {rank} of {world}, completion lengths {lengths.tolist()}"
            expected = reference_rank_loss(loss, mask, rank, world, loss_type)
            cases.append(Case(name, (loss, mask, rank, world, loss_type), expected=expected, atol=1e-6))
    return cases


def check_rank_loss(fn: Callable) -> CheckResult:
    """``fn(token_loss (N, T), mask (N, T), rank, world, loss_type) -> scalar``: the rank's part of the global
    loss, so that the parts summed over ranks equal the 1-process loss."""
    return check(
        "rank_loss",
        fn,
        _rank_loss_cases(),
        hint="take the rank's block of N / world rows; divide its SUM by the GLOBAL count (completions N for "
        "'grpo', after each completion's token mean; masked tokens of the whole batch for 'bnpo'), never by its own.",
    )


def check_zero_bytes(fn: Callable) -> CheckResult:
    """``fn(n_params, n_gpus, stage) -> bytes per GPU`` of a trained model's mixed-precision Adam state."""
    cases = [
        Case(f"{n:,} parameters on {w} GPU(s), ZeRO stage {s}", (n, w, s), expected=zero_state_bytes(n, w, s))
        for n, w, s in ((1000, 1, 0), (1000, 4, 1), (1000, 4, 2), (1000, 4, 3), (7_500_000_000, 64, 2))
    ]
    return check(
        "zero_bytes",
        fn,
        cases,
        hint="16 bytes per parameter: 2 (bf16 weight) + 2 (bf16 gradient) + 12 (fp32 master weight and Adam's two "
        "moments). Stage 1 divides the 12 by N, stage 2 the gradient's 2 as well, stage 3 everything.",
    )
