"""Checkers for chapter 06 (reward models): the Bradley-Terry loss, its gradient, pair accuracy.

Reference answers come from :mod:`rlcourse.reward_model`, the tested versions the rest of the course uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.reward_model import bradley_terry_loss


def _as_float(fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        return float(out.detach()) if isinstance(out, torch.Tensor) else out

    return wrapped


def check_bt_loss(fn: Callable) -> CheckResult:
    """``fn(chosen, rejected, margin=0.0) -> scalar``: mean of -log sigmoid(chosen - rejected - margin)."""
    g = torch.Generator().manual_seed(6)
    c, r = torch.randn(64, generator=g), torch.randn(64, generator=g)
    cases = [
        Case(
            "equal scores [0] vs [0]: log 2", (torch.tensor([0.0]), torch.tensor([0.0])), expected=math.log(2)
        ),
        Case(
            "chosen ahead by 2",
            (torch.tensor([2.0]), torch.tensor([0.0])),
            expected=math.log(1 + math.exp(-2.0)),
        ),
        Case(
            "chosen behind by 3 (a confident mistake costs a lot)",
            (torch.tensor([-1.0]), torch.tensor([2.0])),
            expected=math.log(1 + math.exp(3.0)),
        ),
        Case(
            "a mean over two pairs",
            (torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])),
            expected=0.5 * (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(1.0))),
        ),
        Case(
            "margin 1 with chosen ahead by 1 gives log 2",
            (torch.tensor([1.0]), torch.tensor([0.0])),
            {"margin": 1.0},
            expected=math.log(2),
        ),
        Case(
            "a huge gap of 200 must not overflow (use logsigmoid, not log(sigmoid))",
            (torch.tensor([-100.0]), torch.tensor([100.0])),
            expected=200.0,
            rtol=1e-4,
        ),
        Case("64 random pairs", (c, r), expected=float(bradley_terry_loss(c, r))),
    ]
    return check(
        "bt_loss",
        _as_float(fn),
        cases,
        hint="torch.nn.functional.logsigmoid(chosen - rejected - margin), negated, then .mean().",
    )


def check_bt_gradient(fn: Callable) -> CheckResult:
    """``fn(chosen, rejected) -> (B,)``: d loss / d chosen_i for the mean Bradley-Terry loss over B pairs."""
    g = torch.Generator().manual_seed(7)
    c, r = torch.randn(16, generator=g), torch.randn(16, generator=g)
    cc = c.clone().requires_grad_(True)
    bradley_terry_loss(cc, r).backward()
    cases = [
        Case(
            "equal scores: -1/2 (a coin flip, half the push)",
            (torch.tensor([0.0]), torch.tensor([0.0])),
            expected=[-0.5],
        ),
        Case(
            "two pairs: each gets 1/B of the push",
            (torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])),
            expected=[-0.25, -0.25],
        ),
        Case(
            "already right by 4: almost no push",
            (torch.tensor([4.0]), torch.tensor([0.0])),
            expected=[-(1 - 1 / (1 + math.exp(-4.0)))],
        ),
        Case(
            "wrong by 4: almost the full push",
            (torch.tensor([0.0]), torch.tensor([4.0])),
            expected=[-(1 - 1 / (1 + math.exp(4.0)))],
        ),
        Case("16 random pairs against autograd", (c, r), expected=cc.grad),
    ]
    return check(
        "bt_gradient",
        fn,
        cases,
        hint="d/dx of -log sigmoid(x) is -(1 - sigmoid(x)); the mean over B pairs divides by B.",
    )
