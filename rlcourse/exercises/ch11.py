"""Checkers for chapter 11 (GRPO's variants): the leave-one-out advantage, "my GRPO loss is 0",
and the exact bias and variance of the k1/k2/k3 KL estimators.

Reference answers come from :mod:`rlcourse.grpo` and :mod:`rlcourse.lm.kl` (tested, equal to TRL's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.exercises import Case, CheckResult, check, compare
from rlcourse.grpo import grpo_loss, rloo_advantages
from rlcourse.lm.kl import kl_k1, kl_k2, kl_k3


def check_rloo_advantages(fn: Callable) -> CheckResult:
    """``fn(rewards (N*G,), G) -> (N*G,)``: r_i minus the mean of the other G - 1 rewards of its group."""
    g = torch.Generator().manual_seed(11)
    big = torch.randint(0, 2, (64,), generator=g).float() + 0.1 * torch.randint(0, 2, (64,), generator=g)
    cases = [
        Case(
            "one group [1, 0, 0, 1]",
            (torch.tensor([1.0, 0.0, 0.0, 1.0]), 4),
            expected=torch.tensor([2, -2, -2, 2]) / 3,
        ),
        Case("equal rewards get zero advantage", (torch.tensor([1.1, 1.1, 1.1]), 3), expected=torch.zeros(3)),
        Case(
            "two groups of two [0, 1 | 5, 7]: each against its sibling",
            (torch.tensor([0.0, 1.0, 5.0, 7.0]), 2),
            expected=torch.tensor([-1.0, 1.0, -2.0, 2.0]),
        ),
        Case("8 groups of 8 arithmetic rewards", (big, 8), expected=rloo_advantages(big, 8), atol=1e-5),
    ]
    return check(
        "rloo_advantages",
        fn,
        cases,
        hint="reshape to (N, G); the others' mean is (group sum - r_i) / (G - 1); groups are contiguous rows.",
    )


def _first_update_cases():
    g = torch.Generator().manual_seed(12)
    adv = torch.randn(6, generator=g)
    mask = (torch.arange(5)[None] < torch.tensor([1, 2, 5, 3, 4, 2])[:, None]).long()
    grouped = torch.tensor([1.0, -1.0, 0.5, -0.5])  # group advantages sum to 0 in each group
    gmask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    return [
        ("random advantages, lengths 1-5", adv, mask),
        ("two groups whose advantages sum to 0", grouped, gmask),
    ]


def _reference_first_update(adv: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.full(mask.shape, -1.0, requires_grad=True)
    loss = grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0, loss_type="grpo")
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.detach(), grad


def check_first_update(fn: Callable) -> CheckResult:
    """``fn(advantages (B,), completion_mask (B, T)) -> (loss, grad)``: the "grpo" loss's value at the first
    update (old = current policy, beta = 0) and its gradient with respect to the token log-probs ``(B, T)``."""
    cases = []
    for name, adv, mask in _first_update_cases():
        loss, grad = _reference_first_update(adv, mask)

        def expect(got, loss=loss, grad=grad):
            if not isinstance(got, tuple) or len(got) != 2:
                return f"return a pair (loss, grad), got {type(got).__name__}"
            return compare(got[0], loss, 1e-5, 1e-5) or compare(got[1], grad, 1e-5, 1e-5)

        cases.append(Case(name, (adv, mask), expected=expect))
    return check(
        "first_update",
        fn,
        cases,
        hint="at the first update the ratio is exactly 1, so the loss is mean_i(-A_i) and d loss / d logp_{i,t} = "
        "-A_i / (B * L_i) on the completion's tokens (0 on padding).",
    )


def _moments(logp_all: torch.Tensor, ref_logp_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = logp_all.exp()
    ks = torch.stack(
        [kl_k1(logp_all, ref_logp_all), kl_k2(logp_all, ref_logp_all), kl_k3(logp_all, ref_logp_all)]
    )
    mean = (p * ks).sum(-1)
    return mean, (p * ks**2).sum(-1) - mean**2


def check_estimator_moments(fn: Callable) -> CheckResult:
    """``fn(logp_all (N, V), ref_logp_all (N, V)) -> (means (3, N), variances (3, N))``: the exact mean and
    variance of k1, k2, k3 (rows in that order) for a token sampled from the policy ``exp(logp_all)``."""
    g = torch.Generator().manual_seed(13)
    a = torch.log_softmax(torch.randn(4, 7, generator=g), -1)
    b = torch.log_softmax(a + 0.5 * torch.randn(4, 7, generator=g), -1)
    cases = []
    for name, (x, y) in {
        "identical distributions: every estimator is exactly 0": (a, a.clone()),
        "4 positions, vocabulary of 7": (a, b),
        "the reverse pair": (b, a),
    }.items():
        mean, var = _moments(x, y)

        def expect(got, mean=mean, var=var):
            if not isinstance(got, tuple) or len(got) != 2:
                return f"return a pair (means, variances), got {type(got).__name__}"
            return compare(got[0], mean, 1e-5, 1e-4) or compare(got[1], var, 1e-5, 1e-4)

        cases.append(Case(name, (x, y), expected=expect))
    return check(
        "estimator_moments",
        fn,
        cases,
        hint="with p = exp(logp_all), E[k] = sum_v p_v k_v and Var[k] = sum_v p_v k_v^2 - E[k]^2, where k_v is the "
        "estimator evaluated as if token v had been sampled: k1 = logp - ref, k2 = (logp - ref)^2 / 2, "
        "k3 = exp(ref - logp) - (ref - logp) - 1.",
    )
