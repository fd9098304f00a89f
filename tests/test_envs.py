"""rlcourse.envs: exact chain-MDP values (by hand and by DP) agree with Monte Carlo; bad input is refused."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlcourse.envs import ChainEnv, ChainMDP, discounted_return, make_env, returns_to_go


def test_random_walk_values_match_sutton_barto():
    mdp = ChainMDP(n_states=7)  # 5 live states, +1 on the right, uniform policy, gamma 1
    v = mdp.exact_state_values(mdp.policy(0.5), gamma=1.0)
    np.testing.assert_allclose(v, [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 0], atol=1e-12)


def test_three_state_chain_by_hand():
    # States 0 [T], 1, 2 [T]. From 1: right -> 2 (+1) w.p. 1 - slip, else -> 0 (+left_reward).
    mdp = ChainMDP(n_states=3, slip=0.2, left_reward=-1.0, step_reward=-0.1)
    pi = mdp.policy(0.25)
    q_right = 0.8 * 1.0 + 0.2 * -1.0 - 0.1
    q_left = 0.2 * 1.0 + 0.8 * -1.0 - 0.1
    v = 0.25 * q_right + 0.75 * q_left
    np.testing.assert_allclose(mdp.exact_action_values(pi, 0.9)[1], [q_left, q_right], atol=1e-12)
    np.testing.assert_allclose(mdp.exact_state_values(pi, 0.9), [0, v, 0], atol=1e-12)
    np.testing.assert_allclose(mdp.exact_advantages(pi, 0.9)[1], [q_left - v, q_right - v], atol=1e-12)


def test_bellman_equation_and_advantage_identity():
    mdp = ChainMDP(n_states=9, slip=0.15, step_reward=-0.02, left_reward=0.3)
    pi = mdp.policy(np.linspace(0.1, 0.9, 9))
    v, q, adv = (f(pi, 0.95) for f in (mdp.exact_state_values, mdp.exact_action_values, mdp.exact_advantages))
    np.testing.assert_allclose((pi * q).sum(1), v, atol=1e-10)
    np.testing.assert_allclose((pi * adv).sum(1), 0.0, atol=1e-10)
    live = ~mdp.terminal
    backup = (pi * (mdp.R + 0.95 * mdp.P @ v)).sum(1)
    np.testing.assert_allclose(backup[live], v[live], atol=1e-10)


def test_model_is_a_valid_mdp():
    mdp = ChainMDP(n_states=6, slip=0.3)
    assert mdp.P.shape == (6, 2, 6) and mdp.R.shape == (6, 2) and mdp.terminal.tolist() == [1, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(mdp.P.sum(-1), 1.0)
    assert mdp.P[2, 1, 3] == pytest.approx(0.7) and mdp.P[2, 1, 1] == pytest.approx(0.3)


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_monte_carlo_converges_to_exact_values(noise):
    mdp = ChainMDP(n_states=7, slip=0.1, step_reward=-0.05, reward_noise=noise)
    pi, gamma, n = mdp.policy(0.6), 0.9, 4000
    rng = np.random.default_rng(0)
    G = mdp.mc_returns(pi, gamma, n, rng)
    v_exact = mdp.exact_state_values(pi, gamma)
    stderr = G.std(0) / np.sqrt(n) + 1e-9
    assert np.all(np.abs(G.mean(0) - v_exact) < 4 * stderr + 1e-9), (G.mean(0), v_exact)
    q_mc = mdp.mc_action_values(pi, gamma, n, rng)
    np.testing.assert_allclose(q_mc, mdp.exact_action_values(pi, gamma), atol=0.05)
    # a different policy gives clearly different values, so the test can fail
    assert np.abs(mdp.exact_state_values(mdp.policy(0.2), gamma) - G.mean(0)).max() > 0.1


def test_rollout_returns_match_exact_start_value():
    mdp = ChainMDP(n_states=5, slip=0.2)
    pi, rng = mdp.policy(0.7), np.random.default_rng(1)
    returns = [discounted_return(mdp.rollout(pi, rng, max_steps=500)["rewards"], 0.9) for _ in range(3000)]
    assert np.mean(returns) == pytest.approx(mdp.exact_state_values(pi, 0.9)[mdp.start], abs=0.03)


def test_rollout_shapes_dones_and_truncation():
    mdp = ChainMDP(n_states=11)
    pi, rng = mdp.policy(0.5), np.random.default_rng(2)
    traj = mdp.rollout(pi, rng, max_steps=200)
    T = len(traj["rewards"])
    assert {k: v.shape for k, v in traj.items() if isinstance(v, np.ndarray)} == {
        k: (T,) for k in ("states", "actions", "rewards", "next_states", "dones")
    }
    assert traj["terminated"] and traj["dones"][-1] == 1 and traj["dones"][:-1].sum() == 0
    assert traj["states"][0] == mdp.start and np.all(traj["next_states"][:-1] == traj["states"][1:])
    short = mdp.rollout(pi, np.random.default_rng(2), max_steps=2)
    assert (
        len(short["rewards"]) == 2
        and not short["terminated"]
        and short["last_state"] == short["next_states"][-1]
    )
    many = mdp.rollout(pi, rng, max_steps=300, restart=True)
    assert len(many["rewards"]) == 300 and many["dones"].sum() >= 2
    ends = np.flatnonzero(many["dones"][:-1])
    assert np.all(many["states"][ends + 1] == mdp.start)


def test_rollout_is_reproducible_with_the_same_seed():
    mdp = ChainMDP(slip=0.3, reward_noise=1.0)
    a = mdp.rollout(mdp.policy(0.5), np.random.default_rng(7), restart=True)
    b = mdp.rollout(mdp.policy(0.5), np.random.default_rng(7), restart=True)
    c = mdp.rollout(mdp.policy(0.5), np.random.default_rng(8), restart=True)
    np.testing.assert_array_equal(a["rewards"], b["rewards"])
    assert not np.array_equal(a["rewards"], c["rewards"])


def test_returns_helpers():
    assert discounted_return([0.0, 0.0, 1.0], 0.5) == pytest.approx(0.25)
    assert discounted_return([], 0.9) == 0.0
    np.testing.assert_allclose(returns_to_go([1.0, 2.0, 3.0], 1.0), [6.0, 5.0, 3.0])
    r = np.random.default_rng(0).normal(size=20)
    assert returns_to_go(r, 0.9)[0] == pytest.approx(discounted_return(r, 0.9))
    assert discounted_return(torch.tensor([1.0, 1.0]), 0.5) == pytest.approx(1.5)


def test_gym_env_is_seeded_and_agrees_with_the_model():
    env = make_env("rlcourse/Chain-v0", seed=0, n_states=5, slip=0.5)
    obs, _ = env.reset(seed=3)
    assert obs == 2 and env.observation_space.n == 5 and env.action_space.n == 2

    def episode(seed):
        obs, _ = env.reset(seed=seed)
        seen = [obs]
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(1)
            seen.append(obs)
            done = term or trunc
        return seen, r

    assert episode(11) == episode(11)
    assert len({tuple(episode(s)[0]) for s in range(10)}) > 1  # slip 0.5: paths differ across seeds
    # empirical right-end frequency always pressing right matches the exact value with reward 1 at the right
    mdp = ChainMDP(n_states=5, slip=0.3)
    chain = ChainEnv(mdp)
    wins = 0
    for s in range(2000):
        chain.reset(seed=s)
        term = trunc = False
        while not (term or trunc):
            _, r, term, trunc, _ = chain.step(1)
        wins += r
    assert wins / 2000 == pytest.approx(mdp.exact_state_values(mdp.policy(1.0), 1.0)[2], abs=0.04)


def test_gym_env_truncates_and_refuses_bad_actions():
    env = ChainEnv(n_states=41, max_episode_steps=3)
    env.reset(seed=0)
    out = [env.step(0) for _ in range(3)]
    assert [o[3] for o in out] == [False, False, True] and not out[-1][2]
    with pytest.raises(ValueError, match="action"):
        env.step(2)
    with pytest.raises(ValueError, match="not both"):
        ChainEnv(ChainMDP(), n_states=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_states": 2}, "n_states"),
        ({"slip": 1.5}, "slip"),
        ({"start": 0}, "start"),
        ({"reward_noise": -1.0}, "reward_noise"),
    ],
)
def test_bad_mdp_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChainMDP(**kwargs)


def test_bad_policies_gammas_and_ids():
    mdp = ChainMDP(n_states=5)
    with pytest.raises(ValueError, match=r"shape \(n_states, n_actions\) = \(5, 2\)"):
        mdp.exact_state_values(np.full((4, 2), 0.5), 0.9)
    with pytest.raises(ValueError, match="sum"):
        mdp.exact_state_values(np.full((5, 2), 0.7), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        mdp.exact_state_values(mdp.policy(0.5), 1.5)
    looping = mdp.policy(np.array([0.5, 1.0, 0.0, 0.5, 0.5]))  # 1 -> 2 -> 1 -> ... forever
    with pytest.raises(ValueError, match="infinite"):
        mdp.exact_state_values(looping, 1.0)
    assert np.isfinite(mdp.exact_state_values(looping, 0.9)).all()
    with pytest.raises(ValueError, match="p_right"):
        mdp.policy(1.2)
    with pytest.raises(ValueError, match=r"one per state, shape \(5,\)"):
        mdp.policy([0.5, 0.5])
    with pytest.raises(ValueError, match="first_action"):
        mdp.mc_returns(mdp.policy(0.5), 0.9, 10, np.random.default_rng(0), first_action=2)
    with pytest.raises(ValueError, match="rewards must be 1-D"):
        discounted_return(np.ones((2, 2)), 0.9)
    with pytest.raises(ValueError, match="does not know"):
        make_env("NoSuchEnv-v0")
    assert isinstance(make_env("CartPole-v1", seed=1), gym.Env)
