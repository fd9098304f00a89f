"""Checkers for chapter 07 (RLHF with PPO): per-token rewards and the masked clipped policy loss.

Reference answers come from :mod:`rlcourse.rlhf` and :mod:`rlcourse.ppo`, the tested versions the course uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.ppo import clipped_surrogate_loss
from rlcourse.rlhf import per_token_rewards


def _masks() -> torch.Tensor:
    return torch.tensor(
        [
            [0, 0, 1, 1, 1, 0],  # finished early: trailing pad after <eos>
            [0, 1, 1, 1, 1, 1],  # longest completion: hit the length limit
            [0, 0, 0, 1, 0, 0],  # one token (<eos> at once)
        ],
        dtype=torch.float32,
    )


def check_token_rewards(fn: Callable) -> CheckResult:
    """``fn(scores, logp, ref_logp, mask, kl_coef) -> (B, T)``: -kl_coef (logp - ref) on the mask, + score at the end."""
    g = torch.Generator().manual_seed(7)
    m = _masks()
    logp, ref = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    scores = torch.tensor([1.0, -2.0, 0.5])
    zeros = torch.zeros(3, 6)
    only_scores = torch.zeros(3, 6)
    only_scores[0, 4], only_scores[1, 5], only_scores[2, 3] = 1.0, -2.0, 0.5
    cases = [
        Case(
            "no KL difference: the score sits on each row's LAST mask=1 column",
            (scores, zeros, zeros, m, 0.1),
            expected=only_scores,
        ),
        Case(
            "zero scores: only the KL penalty, and only on completion tokens",
            (torch.zeros(3), logp, ref, m, 0.05),
            expected=-0.05 * (logp - ref) * m,
        ),
        Case(
            "both together, kl_coef 0.2",
            (scores, logp, ref, m, 0.2),
            expected=per_token_rewards(scores, logp, ref, m, 0.2),
        ),
        Case("kl_coef 0: the reward-model score alone", (scores, logp, ref, m, 0.0), expected=only_scores),
    ]
    return check(
        "token_rewards",
        fn,
        cases,
        hint="the last real column of row b is the largest t with mask[b, t] == 1 -- not mask[b].sum() - 1 "
        "(left padding!) and not one past it (TRL #3750).",
    )


def check_masked_ppo_loss(fn: Callable) -> CheckResult:
    """``fn(logp_new, logp_old, advantages, mask, clip_eps) -> scalar``: clipped surrogate, mean over mask=1."""
    g = torch.Generator().manual_seed(8)
    m = _masks()
    new, old = torch.randn(3, 6, generator=g) * 0.3, torch.randn(3, 6, generator=g) * 0.3
    adv = torch.randn(3, 6, generator=g)
    one = torch.ones(1, 1)
    cases = [
        Case(
            "ratio 1, A = 2 on one token: loss -2",
            (torch.zeros(1, 1), torch.zeros(1, 1), 2 * one, one, 0.2),
            expected=-2.0,
        ),
        Case(
            "ratio e^0.5 > 1.2 with A > 0 is clipped to 1.2",
            (0.5 * one, torch.zeros(1, 1), one, one, 0.2),
            expected=-1.2,
        ),
        Case(
            "ratio e^0.5 with A < 0 is NOT clipped (pessimistic min)",
            (0.5 * one, torch.zeros(1, 1), -one, one, 0.2),
            expected=float(torch.exp(torch.tensor(0.5))),
        ),
        Case(
            "random tokens: mean over the 9 completion tokens only",
            (new, old, adv, m, 0.2),
            expected=float(clipped_surrogate_loss(new, old, adv, 0.2, mask=m)),
        ),
    ]

    def as_float(*args):
        out = fn(*args)
        return float(out.detach()) if isinstance(out, torch.Tensor) else out

    return check(
        "masked_ppo_loss",
        as_float,
        cases,
        hint="ratio = exp(new - old); per token -min(ratio*A, clamp(ratio, 1-eps, 1+eps)*A); then "
        "(x * mask).sum() / mask.sum().",
    )
