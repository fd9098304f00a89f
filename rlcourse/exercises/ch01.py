"""Checkers for chapter 01 (RL basics): returns, returns-to-go and advantages.

Reference answers come from :mod:`rlcourse.envs`, the tested versions the rest of the course uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rlcourse.envs import ChainMDP, discounted_return, returns_to_go
from rlcourse.exercises import Case, CheckResult, check


def check_discounted_return(fn: Callable) -> CheckResult:
    """``fn(rewards, gamma) -> float``: G = r_0 + gamma r_1 + gamma^2 r_2 + ..."""
    rng = np.random.default_rng(1)
    long = rng.normal(size=50)
    cases = [
        Case("one reward [1], gamma 0.9", ([1.0], 0.9), expected=1.0),
        Case("reward only at the end [0, 0, 1], gamma 0.5", ([0.0, 0.0, 1.0], 0.5), expected=0.25),
        Case("gamma 1 just adds [1, 2, 3]", ([1.0, 2.0, 3.0], 1.0), expected=6.0),
        Case("gamma 0 keeps only the first reward [2, 5, 7]", ([2.0, 5.0, 7.0], 0.0), expected=2.0),
        Case("three rewards of -1, gamma 0.9", ([-1.0, -1.0, -1.0], 0.9), expected=-2.71),
        Case("an empty episode []", ([], 0.9), expected=0.0),
        Case("50 random rewards, gamma 0.99", (long, 0.99), expected=discounted_return(long, 0.99)),
    ]
    return check(
        "discounted_return", fn, cases, hint="the reward at step t (counting from 0) is weighted by gamma**t."
    )


def check_returns_to_go(fn: Callable) -> CheckResult:
    """``fn(rewards, gamma) -> array (T,)``: G_t = r_t + gamma G_{t+1}, with G_T = 0."""
    rng = np.random.default_rng(2)
    long = rng.normal(size=40)
    cases = [
        Case(
            "reward only at the end [0, 0, 1], gamma 0.5", ([0.0, 0.0, 1.0], 0.5), expected=[0.25, 0.5, 1.0]
        ),
        Case("gamma 1 on [1, 2, 3]", ([1.0, 2.0, 3.0], 1.0), expected=[6.0, 5.0, 3.0]),
        Case("gamma 0 gives the rewards back", ([4.0, -1.0, 2.0], 0.0), expected=[4.0, -1.0, 2.0]),
        Case("one step [4]", ([4.0], 0.9), expected=[4.0]),
        Case("40 random rewards, gamma 0.9", (long, 0.9), expected=returns_to_go(long, 0.9)),
    ]
    return check(
        "returns_to_go",
        fn,
        cases,
        hint="walk backwards from the last step: G = r[t] + gamma * G, and store G at position t.",
    )


def _policy_weighted_sum_is_zero(policy: np.ndarray) -> Callable:
    def complaint(got) -> str | None:
        got = np.asarray(got, dtype=float)
        if got.shape != policy.shape:
            return f"expected shape {policy.shape}, got shape {got.shape}"
        s = (policy * got).sum(1)
        if not np.allclose(s, 0.0, atol=1e-8):
            return f"sum_a pi(a|s) A(s, a) should be 0 in every state, got {np.round(s, 4)}"
        return None

    return complaint


def check_advantages_from_q(fn: Callable) -> CheckResult:
    """``fn(q, policy) -> array (S, A)``: A(s, a) = Q(s, a) - V(s), with V(s) = sum_a pi(a|s) Q(s, a)."""
    mdp = ChainMDP(n_states=7, slip=0.1, step_reward=-0.05)
    pi = mdp.policy(0.7)
    q_chain = mdp.exact_action_values(pi, 0.9)
    rng = np.random.default_rng(3)
    q_rand, pi_rand = rng.normal(size=(4, 3)), rng.dirichlet(np.ones(3), size=4)
    cases = [
        Case(
            "one state, uniform policy, Q = [1, 3]",
            (np.array([[1.0, 3.0]]), np.array([[0.5, 0.5]])),
            expected=[[-1.0, 1.0]],
        ),
        Case(
            "one state, always action 1, Q = [1, 3]",
            (np.array([[1.0, 3.0]]), np.array([[0.0, 1.0]])),
            expected=[[-2.0, 0.0]],
        ),
        Case(
            "4 states x 3 actions, random policy: shape and sum_a pi A = 0",
            (q_rand, pi_rand),
            expected=_policy_weighted_sum_is_zero(pi_rand),
        ),
        Case(
            "4 states x 3 actions, random policy: values",
            (q_rand, pi_rand),
            expected=q_rand - (pi_rand * q_rand).sum(1, keepdims=True),
        ),
        Case(
            "chain MDP, exact Q, slip 0.1, gamma 0.9", (q_chain, pi), expected=mdp.exact_advantages(pi, 0.9)
        ),
    ]
    return check(
        "advantages_from_q",
        fn,
        cases,
        hint="V(s) is the policy-weighted average of Q(s, .) over actions; keep its axis (keepdims) to subtract.",
    )
