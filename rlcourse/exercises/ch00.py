"""Checkers for chapter 00 (start here): two warm-up exercises that show how every exercise works."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.plotting import smooth


def check_total_reward(fn: Callable) -> CheckResult:
    """``fn(rewards) -> float``: the plain sum of one episode's rewards."""
    cases = [
        Case("three rewards [1, 2, 3]", ([1.0, 2.0, 3.0],), expected=6.0),
        Case("one reward [5]", ([5.0],), expected=5.0),
        Case("negative rewards [-1, -0.5]", ([-1.0, -0.5],), expected=-1.5),
        Case("an empty episode []", ([],), expected=0.0),
        Case("a NumPy array of 100 ones", (np.ones(100),), expected=100.0),
    ]
    return check("total_reward", fn, cases, hint="add up every reward; an empty episode has total 0.")


def check_moving_average(fn: Callable) -> CheckResult:
    """``fn(values, window) -> array (T,)``: trailing mean of the last ``window`` values."""
    rng = np.random.default_rng(0)
    noisy = rng.normal(size=30)
    cases = [
        Case("window 1 keeps the values", ([1.0, 5.0, 3.0], 1), expected=[1.0, 5.0, 3.0]),
        Case("window 2 on [2, 4, 6, 8]", ([2.0, 4.0, 6.0, 8.0], 2), expected=[2.0, 3.0, 5.0, 7.0]),
        Case("window longer than the data", ([1.0, 2.0, 3.0], 10), expected=[1.0, 1.5, 2.0]),
        Case("30 noisy values, window 5", (noisy, 5), expected=smooth(noisy, 5)),
    ]
    return check(
        "moving_average",
        fn,
        cases,
        hint="output[t] is the mean of values[max(0, t - window + 1) : t + 1] (fewer points at the start).",
    )
