"""Checkers for chapter 04 (PPO and GAE): the GAE recursion, the clipped surrogate, truncation targets.

Reference answers are small hand-computed cases plus :mod:`rlcourse.gae` and :mod:`rlcourse.ppo`,
the tested versions the rest of the course uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.gae import compute_gae
from rlcourse.ppo import clipped_surrogate_loss


def _t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def check_gae(fn: Callable) -> CheckResult:
    """``fn(rewards, values, dones, last_value, gamma, lam) -> advantages (T,)`` for 1-D tensors."""
    g = torch.Generator().manual_seed(4)
    r, v = (
        torch.randn(30, generator=g, dtype=torch.float64),
        torch.randn(30, generator=g, dtype=torch.float64),
    )
    d = (torch.rand(30, generator=g) < 0.15).double()
    last = torch.tensor(0.7, dtype=torch.float64)
    cases = [
        Case(
            "one step that ends the episode: A = r - V, nothing from last_value",
            (_t(1.0), _t(0.5), _t(1.0), torch.tensor(100.0, dtype=torch.float64), 0.9, 0.9),
            expected=[0.5],
        ),
        Case(
            "one step, episode not over: bootstrap gamma * last_value",
            (_t(1.0), _t(0.5), _t(0.0), torch.tensor(100.0, dtype=torch.float64), 0.9, 0.9),
            expected=[90.5],
        ),
        Case(
            "lambda 0 gives the TD errors r_t + gamma V(s_t+1) - V(s_t)",
            (_t(1, 0, 2), _t(0.5, 1, 0), _t(0, 0, 0), torch.tensor(1.0, dtype=torch.float64), 0.5, 0.0),
            expected=[1.0, -1.0, 2.5],
        ),
        Case(
            "an episode end in the middle stops the sum (gamma = lambda = 1)",
            (_t(1, 1, 1), _t(0, 0, 0), _t(0, 1, 0), torch.tensor(10.0, dtype=torch.float64), 1.0, 1.0),
            expected=[2.0, 1.0, 11.0],
        ),
        Case(
            "30 random steps with episode ends, gamma 0.99, lambda 0.95",
            (r, v, d, last, 0.99, 0.95),
            expected=compute_gae(r, v, d, last, 0.99, 0.95)[0],
        ),
    ]
    return check(
        "gae",
        fn,
        cases,
        hint="walk backwards: A = delta_t + gamma * lam * (1 - done_t) * A, where delta_t uses "
        "V(s_t+1) = values[t+1] (or last_value at the final step) times (1 - done_t).",
    )


def check_clipped_surrogate(fn: Callable) -> CheckResult:
    """``fn(logp_new, logp_old, advantages, eps) -> scalar``: mean(-min(r A, clip(r, 1-eps, 1+eps) A))."""
    g = torch.Generator().manual_seed(5)
    a, b, c = (torch.randn(50, generator=g, dtype=torch.float64) * 0.4 for _ in range(3))
    log = torch.log
    cases = [
        Case(
            "ratio 1 everywhere: the loss is -mean(A)", (_t(0, 0), _t(0, 0), _t(1.0, 3.0), 0.2), expected=-2.0
        ),
        Case("A > 0, ratio 1.5: clipped at 1 + eps", (log(_t(1.5)), _t(0.0), _t(1.0), 0.2), expected=-1.2),
        Case("A < 0, ratio 0.5: clipped at 1 - eps", (log(_t(0.5)), _t(0.0), _t(-1.0), 0.2), expected=0.8),
        Case(
            "A > 0, ratio 0.5: the pessimistic, unclipped side r A",
            (log(_t(0.5)), _t(0.0), _t(1.0), 0.2),
            expected=-0.5,
        ),
        Case(
            "A < 0, ratio 1.5: the pessimistic, unclipped side r A",
            (log(_t(1.5)), _t(0.0), _t(-1.0), 0.2),
            expected=1.5,
        ),
        Case("50 random samples, eps 0.1", (a, b, c, 0.1), expected=clipped_surrogate_loss(a, b, c, 0.1)),
    ]
    return check(
        "clipped_surrogate",
        fn,
        cases,
        hint="r = exp(logp_new - logp_old); take the elementwise minimum of r*A and clamp(r, 1-eps, 1+eps)*A, "
        "then the mean, with a minus sign (a loss to minimise).",
    )


def check_value_target(fn: Callable) -> CheckResult:
    """``fn(reward, next_value, terminated, truncated, gamma) -> float``: the one-step value target."""
    cases = [
        Case("an ordinary step: r + gamma V(s')", (1.0, 40.0, False, False, 0.98), expected=40.2),
        Case("terminated (the pole fell): no future, just r", (1.0, 40.0, True, False, 0.98), expected=1.0),
        Case(
            "truncated by the time limit: the future still exists",
            (1.0, 40.0, False, True, 0.98),
            expected=40.2,
        ),
        Case(
            "terminated and truncated at once: terminated wins", (1.0, 40.0, True, True, 0.98), expected=1.0
        ),
        Case("gamma 0.5, reward 0", (0.0, 10.0, False, True, 0.5), expected=5.0),
    ]
    return check(
        "value_target",
        fn,
        cases,
        hint="only termination means the episode has no future; truncation just stops the clock.",
    )
