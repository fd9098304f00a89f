"""rlcourse.comparison (chapter 10) and its exercise checkers."""

import math

import pytest
import torch

from rlcourse.comparison import pareto_front, state_bytes, time_to_target
from rlcourse.exercises import ch10


def test_state_bytes_counts_adam_copies():
    assert state_bytes([10], [5]) == 4 * (4 * 10 + 5)
    assert state_bytes([10], [5], bytes_per_param=2) == 2 * 45
    assert state_bytes([], []) == 0


def test_state_bytes_matches_grpo_state_memory():
    from rlcourse.grpo import state_memory_mb

    a, b = torch.nn.Linear(3, 4), torch.nn.Linear(5, 2)
    n = [sum(p.numel() for p in m.parameters()) for m in (a, b)]
    assert state_bytes([n[0]], [n[1]]) / 2**20 == pytest.approx(state_memory_mb([a], [b]))


@pytest.mark.parametrize("bad", [([-1], []), ([1.5], []), ([1], ["x"])])
def test_state_bytes_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="non-negative integers"):
        state_bytes(*bad)


def test_time_to_target():
    assert time_to_target([1, 2, 3], [0, 1, 0], 0.5) == 2
    assert time_to_target([1, 2, 3], [0, 0, 0], 0.5) == math.inf
    with pytest.raises(ValueError, match="equal length"):
        time_to_target([1, 2], [0], 0.0)


def test_pareto_front():
    assert pareto_front([0.5, 1.0, 2.0, 3.0, 1.5], [0.1, 0.4, 0.3, 0.6, 0.5]) == [0, 1, 4, 3]
    assert pareto_front([1.0, 1.0], [0.2, 0.5]) == [1]
    with pytest.raises(ValueError, match="equal length"):
        pareto_front([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    "checker, right, wrong",
    [
        (
            ch10.check_state_bytes,
            state_bytes,
            lambda t, f, bytes_per_param=4: bytes_per_param * (sum(t) + sum(f)),
        ),
        (ch10.check_time_to_target, time_to_target, lambda t, v, target: t[-1] if t else math.inf),
        (ch10.check_pareto_front, pareto_front, lambda kl, gold: sorted(range(len(kl)), key=lambda i: kl[i])),
    ],
)
def test_checkers(checker, right, wrong, monkeypatch):
    monkeypatch.delenv("RLCOURSE_STRICT_CHECKS", raising=False)
    assert checker(right)
    res = checker(wrong)
    assert res.status == "failed" and "case" in res.message and "expected" in res.message

    def blank(*a, **k):
        raise NotImplementedError()

    assert checker(blank).status == "not done"
