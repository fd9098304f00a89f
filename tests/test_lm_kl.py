"""Tests for rlcourse.lm.kl: the three per-token KL estimators."""

import pytest
import torch

from rlcourse.lm.kl import kl_estimate, kl_k1, kl_k2, kl_k3


def test_formulas_on_known_values():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    torch.testing.assert_close(kl_k1(logp, ref), logp - ref)
    torch.testing.assert_close(kl_k2(logp, ref), 0.5 * (logp - ref) ** 2)
    r = ref - logp
    torch.testing.assert_close(kl_k3(logp, ref), torch.exp(r) - r - 1)
    torch.testing.assert_close(kl_estimate(logp, ref, "k2"), kl_k2(logp, ref))


def test_k3_and_k2_never_negative_k1_can_be():
    g = torch.Generator().manual_seed(0)
    logp = -5 * torch.rand(10_000, generator=g)
    ref = -5 * torch.rand(10_000, generator=g)
    assert (kl_k3(logp, ref) >= 0).all()
    assert (kl_k2(logp, ref) >= 0).all()
    assert (kl_k1(logp, ref) < 0).any()
    assert (kl_k3(logp, logp) == 0).all()


def test_k1_and_k3_average_to_the_true_kl_on_samples():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(6), 0)
    q = torch.softmax(torch.randn(6), 0)
    true_kl = (p * (p / q).log()).sum()
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(1))
    logp, ref = p.log()[x], q.log()[x]
    torch.testing.assert_close(kl_k1(logp, ref).mean(), true_kl, atol=0.01, rtol=0)
    torch.testing.assert_close(kl_k3(logp, ref).mean(), true_kl, atol=0.01, rtol=0)


def test_shape_mismatch_and_bad_kind():
    with pytest.raises(ValueError, match="shape"):
        kl_k3(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="kind"):
        kl_estimate(torch.zeros(2), torch.zeros(2), "k4")
