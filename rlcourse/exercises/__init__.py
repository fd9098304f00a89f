"""Exercise checkers: one module per chapter (``rlcourse.exercises.ch01`` ...), built on :func:`check`.

An exercise in a notebook is a function whose body sits between nbgrader's markers::

    def discounted_return(rewards, gamma):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

``make student`` (or nbgrader) replaces the body with ``raise NotImplementedError()``. The checker
then prints "not done yet" instead of crashing, so a student copy still runs top to bottom. A wrong
answer gets a message that names the failing case, the expected and the actual value.

With the environment variable ``RLCOURSE_STRICT_CHECKS=1`` (set by ``make test`` for the full
notebooks) a failing or unfinished exercise raises ``AssertionError``, so the shipped solutions are
tested every run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Case:
    """One test case: ``fn(*args, **kwargs)`` should equal ``expected`` (within ``atol``/``rtol``).

    ``expected`` may also be a function ``got -> str | None`` that returns a complaint, or None if fine.
    """

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    expected: Any = None
    atol: float = 1e-6
    rtol: float = 1e-5


@dataclass
class CheckResult:
    """What a checker found. Truthy only when every case passed."""

    exercise: str
    status: str  # "passed", "failed", "not done"
    message: str

    def __bool__(self) -> bool:
        return self.status == "passed"

    def __repr__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """The verdict was already printed by :func:`check`; don't show it twice in a notebook."""


def _strict() -> bool:
    return os.environ.get("RLCOURSE_STRICT_CHECKS", "") not in ("", "0", "false", "False")


def _fmt(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return np.array2string(x, precision=4, threshold=12, suppress_small=True)
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x)


def compare(got: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5) -> str | None:
    """Return None when ``got`` matches ``expected``, else a sentence saying how it differs."""
    if callable(expected):
        return expected(got)
    if isinstance(expected, (torch.Tensor, np.ndarray, list, tuple, float, int)) and not isinstance(
        expected, bool
    ):
        try:
            g = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, dtype=float)
            e = (
                expected.detach().cpu().numpy()
                if isinstance(expected, torch.Tensor)
                else np.asarray(expected, dtype=float)
            )
        except (TypeError, ValueError):
            return f"expected a number or array like {_fmt(expected)}, got {type(got).__name__} {_fmt(got)}"
        if g.shape != e.shape:
            return f"expected shape {e.shape}, got shape {g.shape} (value {_fmt(got)})"
        if not np.allclose(g, e, atol=atol, rtol=rtol, equal_nan=False):
            return f"expected {_fmt(expected)}, got {_fmt(got)}"
        return None
    if got != expected:
        return f"expected {_fmt(expected)}, got {_fmt(got)}"
    return None


def check(exercise: str, fn: Callable, cases: Sequence[Case], hint: str = "") -> CheckResult:
    """Run ``fn`` on every case and print (and return) a verdict naming the first failing case."""
    for case in cases:
        try:
            got = fn(*case.args, **case.kwargs)
        except NotImplementedError:
            res = CheckResult(
                exercise,
                "not done",
                f"⏳ {exercise}: not done yet — fill in the function above, then re-run this cell.",
            )
            break
        except Exception as err:  # a learner's bug: report it, don't crash the notebook
            res = CheckResult(
                exercise, "failed", f"✗ {exercise}: case '{case.name}' raised {type(err).__name__}: {err}"
            )
            break
        problem = compare(got, case.expected, case.atol, case.rtol)
        if problem is not None:
            msg = f"✗ {exercise}: case '{case.name}': {problem}"
            if hint:
                msg += f"\n  hint: {hint}"
            res = CheckResult(exercise, "failed", msg)
            break
    else:
        res = CheckResult(exercise, "passed", f"✓ {exercise}: all {len(cases)} cases passed.")
    print(res.message)
    if _strict() and not res:
        raise AssertionError(res.message)
    return res
