"""Checkers for chapter 10 (PPO vs GRPO vs DPO): state memory, time to a target, the reward-KL frontier.

Reference answers come from :mod:`rlcourse.comparison`, the tested versions the notebook uses downstream.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rlcourse.comparison import pareto_front, state_bytes, time_to_target
from rlcourse.exercises import Case, CheckResult, check


def check_state_bytes(fn: Callable) -> CheckResult:
    """``fn(trained, frozen, bytes_per_param=4) -> int``: 4 copies per trained parameter, 1 per frozen."""
    ppo = ([100, 120], [100, 120])  # policy + critic trained; reference + reward model frozen
    cases = [
        Case("one trained model of 10 parameters, nothing frozen", ([10], []), expected=160),
        Case("one frozen model of 10 parameters only", ([], [10]), expected=40),
        Case(
            "PPO-like: policy 100 + critic 120 trained, reference 100 + RM 120 frozen",
            ppo,
            expected=state_bytes(*ppo),
        ),
        Case("GRPO-like: policy 100 trained, reference 100 frozen", ([100], [100]), expected=2000),
        Case("bfloat16: 2 bytes per parameter", ([100], [100]), {"bytes_per_param": 2}, expected=1000),
        Case("no models at all", ([], []), expected=0),
    ]
    return check(
        "state_bytes",
        fn,
        cases,
        hint="Adam keeps weight, gradient and two moments per trained parameter (4 copies); "
        "a frozen model keeps only its weights.",
    )


def check_time_to_target(fn: Callable) -> CheckResult:
    """``fn(times, values, target) -> float``: first time with value >= target, ``math.inf`` if never."""
    t = [1.0, 2.0, 3.0, 4.0]
    cases = [
        Case("reaches the target at the third point", (t, [0.0, 0.2, 0.5, 0.9], 0.5), expected=3.0),
        Case("already there at the first point", (t, [0.7, 0.2, 0.5, 0.9], 0.5), expected=1.0),
        Case("a dip after reaching it does not matter", (t, [0.0, 0.6, 0.1, 0.0], 0.5), expected=2.0),
        Case("never reaches it: math.inf", (t, [0.0, 0.1, 0.2, 0.3], 0.5), expected=math.inf),
        Case("uneven times", ([0.5, 4.0, 9.5], [-1.0, 0.0, 1.0], 0.0), expected=4.0),
        Case("empty curve: math.inf", ([], [], 0.0), expected=math.inf),
        Case(
            "reference on a longer curve",
            (list(range(20)), [0.1 * i for i in range(20)], 1.05),
            expected=time_to_target(list(range(20)), [0.1 * i for i in range(20)], 1.05),
        ),
    ]
    return check(
        "time_to_target",
        fn,
        cases,
        hint="walk along the curve and return times[i] for the first i with values[i] >= target; "
        "return math.inf if there is none.",
    )


def check_pareto_front(fn: Callable) -> CheckResult:
    """``fn(kl, gold) -> list[int]``: indices of non-dominated points, sorted by KL."""
    kl = [0.5, 1.0, 2.0, 3.0, 1.5]
    gold = [0.1, 0.4, 0.3, 0.6, 0.5]
    cases = [
        Case("five points, two dominated", (kl, gold), expected=pareto_front(kl, gold)),
        Case("a single point is its own front", ([1.0], [0.2]), expected=[0]),
        Case(
            "more KL always buys more gold: all on the front",
            ([3.0, 1.0, 2.0], [0.3, 0.1, 0.2]),
            expected=[1, 2, 0],
        ),
        Case("one point beats all others", ([0.1, 1.0, 2.0], [0.9, 0.5, 0.1]), expected=[0]),
    ]
    return check(
        "pareto_front",
        fn,
        cases,
        hint="sort the points by KL; walking right, keep a point only if its gold beats every point kept so far.",
    )
