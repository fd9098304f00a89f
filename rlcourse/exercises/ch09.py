"""Checkers for chapter 09 (DPO): the KL-regularised optimum in closed form, and the DPO loss.

Reference answers come from :mod:`rlcourse.dpo`, the tested versions (equal to TRL's) the course uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rlcourse.dpo import closed_form_optimum, dpo_loss
from rlcourse.exercises import Case, CheckResult, check


def check_optimal_policy(fn: Callable) -> CheckResult:
    """``fn(ref_probs (K,), rewards (K,), beta) -> (K,)``: pi* = pi_ref exp(r / beta) / Z."""
    ref = torch.tensor([0.5, 0.3, 0.2])
    r = torch.tensor([0.0, 1.0, -1.0])
    cases = [
        Case("zero rewards keep the reference", (ref, torch.zeros(3), 0.5), expected=ref, atol=1e-6),
        Case("beta 1", (ref, r, 1.0), expected=closed_form_optimum(ref, r, 1.0), atol=1e-6),
        Case(
            "small beta 0.1 concentrates on the best answer",
            (ref, r, 0.1),
            expected=closed_form_optimum(ref, r, 0.1),
            atol=1e-6,
        ),
        Case(
            "large beta 100 stays near the reference",
            (ref, r, 100.0),
            expected=closed_form_optimum(ref, r, 100.0),
            atol=1e-6,
        ),
        Case(
            "an answer the reference never says stays impossible",
            (torch.tensor([0.0, 1.0]), torch.tensor([5.0, 0.0]), 1.0),
            expected=torch.tensor([0.0, 1.0]),
            atol=1e-6,
        ),
    ]
    return check(
        "optimal_policy",
        fn,
        cases,
        hint="multiply ref_probs by exp(rewards / beta), then divide by the sum (it is a distribution).",
    )


def check_dpo_loss(fn: Callable) -> CheckResult:
    """``fn(pc, pr, rc, rr, beta) -> scalar``: mean of -logsigmoid(beta * ((pc - rc) - (pr - rr)))."""
    g = torch.Generator().manual_seed(11)
    x = [-torch.rand(16, generator=g) * 20 for _ in range(4)]
    same = torch.tensor([-3.0, -7.0])

    def ref(*args):
        return dpo_loss(*args)[0]

    cases = [
        Case(
            "policy == reference: log 2",
            (same, same - 1, same, same - 1, 0.1),
            expected=math.log(2),
            atol=1e-6,
        ),
        Case(
            "chosen up 1 nat, rejected down 1 nat, beta 0.5",
            (torch.tensor([-2.0]), torch.tensor([-5.0]), torch.tensor([-3.0]), torch.tensor([-4.0]), 0.5),
            expected=-math.log(1 / (1 + math.exp(-1.0))),
            atol=1e-6,
        ),
        Case("a batch of 16 pairs, beta 0.1", (*x, 0.1), expected=ref(*x, 0.1), atol=1e-5),
        Case(
            "a large margin (beta 1, delta 200) must not overflow",
            (torch.tensor([0.0]), torch.tensor([-200.0]), torch.tensor([0.0]), torch.tensor([0.0]), 1.0),
            expected=0.0,
            atol=1e-6,
        ),
        Case(
            "a large wrong margin (beta 1, delta -200)",
            (torch.tensor([-200.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), 1.0),
            expected=200.0,
            atol=1e-3,
        ),
    ]
    return check(
        "dpo_loss",
        fn,
        cases,
        hint="delta = (pc - rc) - (pr - rr); loss = mean(-F.logsigmoid(beta * delta)). "
        "torch.log(torch.sigmoid(.)) overflows for large |delta|; F.logsigmoid does not.",
    )
