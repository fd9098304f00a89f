"""Checkers for chapter 03 (TRPO): the KL between categorical policies and conjugate gradient.

Reference answers come from :mod:`rlcourse.trpo`, the tested versions the rest of the course uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.trpo import categorical_kl


def _kl(p, q) -> list[float]:
    return categorical_kl(torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)).tolist()


def check_categorical_kl(fn: Callable) -> CheckResult:
    """``fn(logits_p, logits_q) -> array (B,)``: KL(p || q) = sum_a p(a) log(p(a) / q(a)) per row."""
    rng = np.random.default_rng(4)
    p, q = rng.normal(size=(4, 3)).tolist(), rng.normal(size=(4, 3)).tolist()
    half = np.log([0.5, 0.5]).tolist()
    skew = np.log([0.9, 0.1]).tolist()
    cases = [
        Case("identical policies", ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]), expected=[0.0]),
        Case("adding a constant to the logits changes nothing", ([[0.0, 1.0]], [[5.0, 6.0]]), expected=[0.0]),
        Case("p = [0.9, 0.1], q = [0.5, 0.5]", ([skew], [half]), expected=_kl([skew], [half])),
        Case(
            "KL is not symmetric: p = [0.5, 0.5], q = [0.9, 0.1]",
            ([half], [skew]),
            expected=_kl([half], [skew]),
        ),
        Case("4 random rows of 3 logits", (p, q), expected=_kl(p, q)),
    ]
    return check(
        "categorical_kl",
        fn,
        cases,
        hint="turn logits into log-probabilities with log_softmax first; then sum p * (log p - log q) over the last axis.",
    )


def _spd(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return m @ m.T + n * np.eye(n), rng.normal(size=n)


def check_conjugate_gradient(fn: Callable) -> CheckResult:
    """``fn(Avp, b, iters) -> x (n,)`` with ``Avp(v) = A v``: solves A x = b for SPD A."""
    cases = []
    for name, n, seed in [("2 x 2", 2, 0), ("5 x 5", 5, 1), ("20 x 20", 20, 2)]:
        A, b = _spd(n, seed)
        At, bt = torch.tensor(A), torch.tensor(b)
        cases.append(
            Case(
                f"random SPD {name} system, {n} iterations",
                (lambda v, At=At: At @ v, bt, n),
                expected=torch.linalg.solve(At, bt),
                atol=1e-6,
                rtol=1e-5,
            )
        )
    diag = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    cases.insert(
        0,
        Case(
            "diagonal A = diag(1, 2, 4), b = (1, 1, 1)",
            (lambda v: diag * v, torch.ones(3, dtype=torch.float64), 3),
            expected=[1.0, 0.5, 0.25],
        ),
    )
    return check(
        "conjugate_gradient",
        fn,
        cases,
        hint="start at x = 0 with r = p = b; each step: alpha = r.r / p.Ap, x += alpha p, r -= alpha Ap, "
        "p = r_new + (r_new.r_new / r.r) p.",
    )
