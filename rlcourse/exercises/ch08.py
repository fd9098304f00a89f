"""Checkers for chapter 08 (GRPO): group-relative advantages, the k3 KL estimator, the loss normalisations.

Reference answers come from :mod:`rlcourse.grpo`, the tested versions (equal to TRL's) the course uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.grpo import group_advantages, token_weights
from rlcourse.lm.kl import kl_k3


def check_group_advantages(fn: Callable) -> CheckResult:
    """``fn(rewards (N*G,), G) -> (N*G,)``: (r - group mean) / (group std with N-1 + 1e-4)."""
    g = torch.Generator().manual_seed(8)
    big = torch.randint(0, 2, (64,), generator=g).float() + 0.1 * torch.randint(0, 2, (64,), generator=g)
    cases = [
        Case(
            "one group [1, 0, 0, 1]",
            (torch.tensor([1.0, 0.0, 0.0, 1.0]), 4),
            expected=group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4),
            atol=1e-5,
        ),
        Case(
            "a group of equal rewards gets zero advantage",
            (torch.tensor([1.1, 1.1, 1.1]), 3),
            expected=torch.zeros(3),
            atol=1e-5,
        ),
        Case(
            "two groups of two [0, 1 | 5, 7]: each against its own mean",
            (torch.tensor([0.0, 1.0, 5.0, 7.0]), 2),
            expected=group_advantages(torch.tensor([0.0, 1.0, 5.0, 7.0]), 2),
            atol=1e-5,
        ),
        Case(
            "8 groups of 8 arithmetic rewards (0, 0.1, 1.0, 1.1)",
            (big, 8),
            expected=group_advantages(big, 8),
            atol=1e-5,
        ),
    ]
    return check(
        "group_advantages",
        fn,
        cases,
        hint="reshape to (N, G); std(dim=1) uses N-1 by default in torch (Bessel, as TRL); add 1e-4; "
        "groups are contiguous rows, so use .view(-1, G), not .view(G, -1).",
    )


def check_kl_k3(fn: Callable) -> CheckResult:
    """``fn(logp, ref_logp) -> same shape``: exp(ref - logp) - (ref - logp) - 1."""
    g = torch.Generator().manual_seed(9)
    a, b = -torch.rand(3, 5, generator=g) * 3, -torch.rand(3, 5, generator=g) * 3
    cases = [
        Case(
            "identical policies: KL 0",
            (torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -2.0])),
            expected=torch.zeros(2),
        ),
        Case(
            "policy more confident than the reference",
            (torch.tensor([-0.1]), torch.tensor([-1.1])),
            expected=kl_k3(torch.tensor([-0.1]), torch.tensor([-1.1])),
        ),
        Case(
            "policy less confident than the reference",
            (torch.tensor([-2.0]), torch.tensor([-0.5])),
            expected=kl_k3(torch.tensor([-2.0]), torch.tensor([-0.5])),
        ),
        Case("a (3, 5) batch of token log-probs", (a, b), expected=kl_k3(a, b), atol=1e-5),
        Case(
            "never negative",
            (a, b),
            expected=lambda got: (
                None
                if bool((torch.as_tensor(got) >= 0).all())
                else "some values are negative; k3 = e^x - x - 1 >= 0 for every x"
            ),
        ),
    ]
    return check("kl_k3", fn, cases, hint="with x = ref_logp - logp, k3 = exp(x) - x - 1.")


def check_aggregate_loss(fn: Callable) -> CheckResult:
    """``fn(per_token_loss (B, T), mask (B, T), loss_type) -> scalar`` for "grpo", "bnpo", "dr_grpo"."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn(4, 6, generator=g)
    mask = (torch.arange(6)[None] < torch.tensor([1, 3, 6, 2])[:, None]).long()

    def ref(lt: str) -> torch.Tensor:
        return (x * token_weights(mask, lt)).sum()

    cases = [
        Case(f"loss_type {lt!r}, lengths 1, 3, 6, 2", (x, mask, lt), expected=ref(lt), atol=1e-5)
        for lt in ("grpo", "bnpo", "dr_grpo")
    ]
    cases.append(
        Case(
            "padding values are ignored",
            (torch.where(mask.bool(), x, 99.0), mask, "grpo"),
            expected=ref("grpo"),
            atol=1e-5,
        )
    )
    return check(
        "aggregate_loss",
        fn,
        cases,
        hint="grpo: mean over rows of (row's masked sum / row's token count); bnpo: masked sum / all tokens; "
        "dr_grpo: masked sum / (B * T). Multiply by the mask before summing.",
    )
