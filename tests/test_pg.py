"""Tests for rlcourse.pg (chapter 02): returns with episode boundaries, the REINFORCE loss, rollouts."""

import numpy as np
import pytest
import torch

from rlcourse.pg import (
    ReinforceConfig,
    collect_episodes,
    full_return,
    gradient_variance,
    make_envs,
    reinforce_loss,
    reward_to_go,
    train_reinforce,
)
from rlcourse.policies import CategoricalPolicy, ValueNet


def test_reward_to_go_hand_computed_with_episode_boundary():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    dones = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])  # episodes [1, 2] and [3, 4, 5]
    got = reward_to_go(rewards, dones, gamma=0.5)
    expected = torch.tensor([1 + 0.5 * 2, 2.0, 3 + 0.5 * 4 + 0.25 * 5, 4 + 0.5 * 5, 5.0])
    torch.testing.assert_close(got, expected)


def test_reward_to_go_last_step_is_an_episode_end_and_gamma_one_sums():
    rewards = torch.tensor([1.0, 1.0, 1.0])
    got = reward_to_go(rewards, torch.zeros(3), gamma=1.0)
    torch.testing.assert_close(got, torch.tensor([3.0, 2.0, 1.0]))


def test_full_return_gives_every_step_its_episode_return():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    dones = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])
    got = full_return(rewards, dones, gamma=0.5)
    first, second = 1 + 0.5 * 2, 3 + 0.5 * 4 + 0.25 * 5
    torch.testing.assert_close(got, torch.tensor([first, first, second, second, second]))


def test_returns_on_parallel_streams_match_each_column():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(12, 3, generator=g)
    dones = (torch.rand(12, 3, generator=g) < 0.3).float()
    for fn in (reward_to_go, full_return):
        got = fn(rewards, dones, 0.9)
        for n in range(3):
            torch.testing.assert_close(got[:, n], fn(rewards[:, n], dones[:, n], 0.9))


@pytest.mark.parametrize("fn", [reward_to_go, full_return])
def test_returns_reject_mismatched_shapes(fn):
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        fn(torch.zeros(5), torch.zeros(4), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        fn(torch.zeros(3), torch.zeros(3), 1.5)
    with pytest.raises(ValueError, match="T >= 1"):
        fn(torch.zeros(0), torch.zeros(0), 0.9)


def test_reinforce_loss_value_sign_and_gradient():
    logits = torch.zeros(3, 2, requires_grad=True)
    actions = torch.tensor([0, 1, 0])
    logp = torch.log_softmax(logits, -1)[torch.arange(3), actions]
    weights = torch.tensor([1.0, -2.0, 3.0])
    loss = reinforce_loss(logp, weights)
    assert loss.shape == ()
    torch.testing.assert_close(loss, -(np.log(0.5) * (1 - 2 + 3)) / 3 * torch.ones(()))
    loss.backward()
    # descent on the loss raises log pi of actions with positive weight: d loss / d logit[a] < 0
    assert logits.grad[0, 0] < 0 and logits.grad[2, 0] < 0 and logits.grad[1, 1] > 0


def test_reinforce_loss_treats_weights_as_constants_and_checks_shapes():
    logp = torch.tensor([-0.5, -1.0], requires_grad=True)
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    reinforce_loss(logp, w).backward()
    assert w.grad is None
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        reinforce_loss(logp, torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        reinforce_loss(torch.zeros(0), torch.zeros(0))


def test_collect_episodes_returns_whole_episodes():
    torch.manual_seed(0)
    envs = make_envs("CartPole-v1", 4)
    policy = CategoricalPolicy(4, 2, (8,))
    batch = collect_episodes(envs, policy, seed=0)
    envs.close()
    T = sum(batch.lengths)
    assert len(batch.lengths) == 4 and batch.obs.shape == (T, 4) and batch.actions.shape == (T,)
    assert batch.dones.sum() == 4
    for sl, n, r in zip(batch.episode_slices(), batch.lengths, batch.returns, strict=True):
        assert batch.dones[sl][-1] == 1 and batch.dones[sl][:-1].sum() == 0
        assert float(batch.rewards[sl].sum()) == pytest.approx(r) and sl.stop - sl.start == n


def test_collect_episodes_is_seeded():
    out = []
    for _ in range(2):
        torch.manual_seed(1)
        envs = make_envs("CartPole-v1", 3)
        out.append(collect_episodes(envs, CategoricalPolicy(4, 2, (8,)), seed=7).lengths)
        envs.close()
    assert out[0] == out[1]


def test_train_reinforce_improves_cartpole():
    _, hist = train_reinforce(ReinforceConfig(seed=0, iterations=25, use_baseline=True))
    assert np.mean(hist.update_mean_return[-5:]) > 2 * np.mean(hist.update_mean_return[:3])
    assert len(hist.episode_returns) == 25 * 16


def test_gradient_variance_orders_the_estimators():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (16,))
    value = ValueNet(4, (16,))
    zero = lambda obs: torch.zeros(obs.shape[0])  # noqa: E731
    res = gradient_variance(policy, zero, n_batches=30, episodes_per_batch=2, gamma=1.0, seed=0)
    assert set(res) == {"full return", "reward-to-go", "reward-to-go - V(s)"}
    # with a zero baseline, "reward-to-go - V" equals reward-to-go exactly
    assert res["reward-to-go - V(s)"]["total_variance"] == pytest.approx(
        res["reward-to-go"]["total_variance"]
    )
    assert res["reward-to-go"]["total_variance"] < res["full return"]["total_variance"]
    assert value(torch.zeros(2, 4)).shape == (2,)
