"""Tests for rlcourse.trpo (chapter 03): CG, Fisher-vector products, the line search, the update."""

import numpy as np
import pytest
import torch

from rlcourse.policies import CategoricalPolicy
from rlcourse.trpo import (
    PolicyBatch,
    TRPOConfig,
    backtracking_line_search,
    categorical_kl,
    conjugate_gradient,
    explicit_fisher,
    fisher_vector_product,
    flat_params,
    set_flat_params,
    train_trpo,
    trpo_step,
)


def _spd(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)


def test_conjugate_gradient_solves_a_random_spd_system():
    A, b = _spd(8)
    x = conjugate_gradient(lambda v: A @ v, b, iters=50)
    torch.testing.assert_close(x, torch.linalg.solve(A, b))


def test_conjugate_gradient_is_exact_after_n_iterations_and_stops_early():
    A, b = _spd(5, seed=1)
    torch.testing.assert_close(conjugate_gradient(lambda v: A @ v, b, iters=5), torch.linalg.solve(A, b))
    calls = []
    x = conjugate_gradient(lambda v: calls.append(1) or 3.0 * v, b, iters=10)  # A = 3 I: one step
    torch.testing.assert_close(x, b / 3.0)
    assert len(calls) == 1


def test_conjugate_gradient_bad_inputs():
    with pytest.raises(ValueError, match=r"\(n,\)"):
        conjugate_gradient(lambda v: v, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"\(4,\).*\(2,\)"):
        conjugate_gradient(lambda v: torch.cat([v, v]), torch.ones(2))


def _tiny_policy():
    torch.manual_seed(0)
    policy = CategoricalPolicy(3, 3, (4,)).double()
    # move away from the near-uniform initial policy so the Fisher is not tiny
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    obs = torch.randn(6, 3, dtype=torch.float64)
    return policy, obs


def _tiny_kl():
    """The tiny policy, its parameters, and the mean KL(pi_old || pi_theta) as a closure (0 at theta_old)."""
    policy, obs = _tiny_policy()
    with torch.no_grad():
        logits_old = policy(obs)
    return (
        policy,
        obs,
        list(policy.parameters()),
        logits_old,
        lambda: categorical_kl(logits_old, policy(obs)).mean(),
    )


def test_fvp_matches_the_explicit_fisher_and_the_kl_hessian():
    policy, obs, params, logits_old, kl = _tiny_kl()
    fvp = fisher_vector_product(kl, params, damping=0.0)
    n = sum(p.numel() for p in params)
    from_fvp = torch.stack([fvp(e) for e in torch.eye(n, dtype=torch.float64)], dim=1)
    fisher = explicit_fisher(policy, obs)
    torch.testing.assert_close(from_fvp, fisher)

    theta0 = flat_params(params)

    def kl_of(theta):
        shapes = [p.shape for p in params]
        chunks = torch.split(theta, [p.numel() for p in params])
        named = {k: c.view(s) for (k, _), c, s in zip(policy.named_parameters(), chunks, shapes, strict=True)}
        return categorical_kl(logits_old, torch.func.functional_call(policy, named, (obs,))).mean()

    hess = torch.autograd.functional.hessian(kl_of, theta0)
    torch.testing.assert_close(hess, fisher)


def test_fvp_adds_damping_and_checks_shape():
    _, _, params, _, kl = _tiny_kl()
    v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
    torch.testing.assert_close(
        fisher_vector_product(kl, params, 0.3)(v), fisher_vector_product(kl, params, 0.0)(v) + 0.3 * v
    )
    with pytest.raises(ValueError, match="shape"):
        fisher_vector_product(kl, params)(torch.zeros(3, dtype=torch.float64))


def test_cg_on_damped_fisher_matches_solve():
    policy, obs, params, _, kl = _tiny_kl()
    fvp = fisher_vector_product(kl, params, damping=0.1)
    n = sum(p.numel() for p in params)
    F = explicit_fisher(policy, obs) + 0.1 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(
        conjugate_gradient(fvp, b, iters=200, tol=1e-24), torch.linalg.solve(F, b), rtol=1e-5, atol=1e-6
    )


def test_categorical_kl_values_and_shapes():
    p = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    q = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    expected = torch.tensor([0.0, 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)], dtype=torch.float32)
    torch.testing.assert_close(categorical_kl(p, q), expected)
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        categorical_kl(p, torch.zeros(2, 3))


def test_line_search_keeps_old_params_when_no_step_is_acceptable():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    res = backtracking_line_search([w], torch.tensor([1.0, 1.0]), lambda: (-1.0, 0.0), 0.0, max_kl=0.01)
    assert not res.accepted and res.tries == 10
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 2.0]))


def test_line_search_accepts_the_first_step_within_the_kl_bound():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    # "surrogate" = w, "KL" = w^2: tries w = 1.0 (KL 1.0), 0.8 (KL 0.64), 0.64 (KL 0.41 <= 0.5: accepted)
    kl_fn = lambda: (w.item(), w.item() ** 2)  # noqa: E731
    res = backtracking_line_search([w], torch.tensor([1.0]), kl_fn, 0.0, max_kl=0.5)
    assert res.accepted and res.kl <= 0.5
    assert res.step_frac == pytest.approx(0.8**2)
    assert [t[0] for t in res.trace] == pytest.approx([1.0, 0.8, 0.64])
    torch.testing.assert_close(w.detach(), torch.tensor([0.64]))
    with pytest.raises(ValueError, match=r"\(1,\).*\(2,\)"):
        backtracking_line_search([w], torch.ones(2), kl_fn, 0.0, max_kl=0.5)


def test_trpo_step_respects_the_trust_region():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (16,))
    obs, actions = torch.randn(200, 4), torch.randint(0, 2, (200,))
    adv = torch.randn(200)
    batch = PolicyBatch(obs, actions, adv)
    before = flat_params(list(policy.parameters()))
    stats = trpo_step(policy, batch, TRPOConfig(delta=0.01))
    assert stats["accepted"] == 1.0 and 0 < stats["kl"] <= 0.01 and stats["improvement"] >= 0
    with torch.no_grad():
        set_flat_params(list(policy.parameters()), before)
    big = trpo_step(policy, batch, TRPOConfig(update="vanilla", vanilla_lr=500.0))
    assert big["kl"] > 0.01  # a plain gradient step has no such guarantee


def test_policy_batch_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"\(5,\)"):
        PolicyBatch(torch.zeros(5, 4), torch.zeros(4, dtype=torch.long), torch.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        PolicyBatch(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))


def test_train_trpo_keeps_every_update_inside_delta():
    _, hist = train_trpo(TRPOConfig(seed=0, iterations=8, episodes_per_batch=8))
    assert max(hist.update_kl) <= 0.01
    assert np.mean(hist.update_mean_return[-3:]) > np.mean(hist.update_mean_return[:2])
    # the cosine between the natural-gradient step and the plain gradient is logged per update
    assert len(hist.update_cos_grad) == 8 and all(0 < c <= 1 + 1e-6 for c in hist.update_cos_grad)
