"""Checkers for chapter 02 (policy gradient): rewards-to-go with episode ends, the softmax score.

Reference answers come from :mod:`rlcourse.pg`, the tested versions the rest of the course uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.pg import reward_to_go


def _rtg(rewards, dones, gamma) -> list[float]:
    return reward_to_go(
        torch.tensor(rewards, dtype=torch.float64), torch.tensor(dones, dtype=torch.float64), gamma
    ).tolist()


def check_reward_to_go(fn: Callable) -> CheckResult:
    """``fn(rewards, dones, gamma) -> array (T,)``: G_t = r_t + gamma (1 - done_t) G_{t+1}."""
    rng = np.random.default_rng(2)
    r = rng.normal(size=30).round(3).tolist()
    d = (rng.random(30) < 0.2).astype(float).tolist()
    cases = [
        Case("one episode [1, 1, 1], gamma 1", ([1.0, 1.0, 1.0], [0, 0, 1], 1.0), expected=[3.0, 2.0, 1.0]),
        Case(
            "two episodes [1, 2 | 3, 4], gamma 0.5",
            ([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1], 0.5),
            expected=[2.0, 2.0, 5.0, 4.0],
        ),
        Case(
            "an episode end stops the sum: [0, 5 | 7], gamma 1",
            ([0.0, 5.0, 7.0], [0, 1, 1], 1.0),
            expected=[5.0, 5.0, 7.0],
        ),
        Case(
            "the batch ends mid-episode: [1, 1], no done, gamma 0.9",
            ([1.0, 1.0], [0, 0], 0.9),
            expected=[1.9, 1.0],
        ),
        Case("30 random rewards and episode ends, gamma 0.9", (r, d, 0.9), expected=_rtg(r, d, 0.9)),
    ]
    return check(
        "reward_to_go",
        fn,
        cases,
        hint="walk backwards; reset the running sum to 0 *after* a step whose done flag is 1 "
        "(G = r[t] + gamma * (1 - done[t]) * G).",
    )


def _score(logits, action) -> np.ndarray:
    logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    torch.log_softmax(logits, -1)[action].backward()
    return logits.grad.numpy()


def check_softmax_score(fn: Callable) -> CheckResult:
    """``fn(logits, action) -> array (A,)``: grad of log softmax(logits)[action] w.r.t. the logits."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=5).tolist()
    cases = [
        Case("two equal logits, action 0", ([0.0, 0.0], 0), expected=[0.5, -0.5]),
        Case("two equal logits, action 1", ([0.0, 0.0], 1), expected=[-0.5, 0.5]),
        Case(
            "a sure action (logits [10, -10]), action 0",
            ([10.0, -10.0], 0),
            expected=_score([10.0, -10.0], 0),
        ),
        Case("three actions, action 2", ([1.0, 2.0, 3.0], 2), expected=_score([1.0, 2.0, 3.0], 2)),
        Case("five random logits, action 3", (z, 3), expected=_score(z, 3)),
    ]
    return check(
        "softmax_score",
        fn,
        cases,
        hint="log pi(a) = z_a - log sum_b exp(z_b), so d/dz_b = 1[b == a] - softmax(z)_b.",
    )
