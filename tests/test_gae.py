"""GAE (rlcourse.gae) against brute force, and its limits lambda = 0 (TD) and lambda = 1 (Monte Carlo)."""

import pytest
import torch

from rlcourse.gae import compute_gae, td_errors


def random_rollout(T: int, N: int | None, seed: int = 0, p_done: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    shape = (T,) if N is None else (T, N)
    rewards = torch.randn(shape, generator=g, dtype=torch.float64)
    values = torch.randn(shape, generator=g, dtype=torch.float64)
    dones = (torch.rand(shape, generator=g) < p_done).double()
    last_value = torch.randn(shape[1:], generator=g, dtype=torch.float64)
    return rewards, values, dones, last_value


def brute_force_gae(rewards, values, dones, last_value, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k}, the sum stopping at the first episode end, one env at a time."""
    T = rewards.shape[0]
    if rewards.dim() == 1:  # one environment: view it as (T, 1)
        rewards, values, dones, last_value = (
            rewards[:, None],
            values[:, None],
            dones[:, None],
            last_value[None],
        )
    r, v, d, lv = rewards, values, dones, last_value
    adv = torch.zeros_like(r)
    for n in range(r.shape[1]):
        next_v = [v[t + 1, n] if t + 1 < T else lv[n] for t in range(T)]
        delta = [r[t, n] + gamma * next_v[t] * (1 - d[t, n]) - v[t, n] for t in range(T)]
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                total += weight * delta[k]
                if d[k, n]:
                    break
                weight *= gamma * lam
            adv[t, n] = total
    return adv


def mc_returns(rewards, dones, last_value, gamma):
    """G_t = r_t + gamma (1 - done_t) G_{t+1}, with G_T = V(s_T) (the rollout is cut, not ended)."""
    G = torch.zeros_like(rewards)
    running = last_value.clone()
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * (1 - dones[t]) * running
        G[t] = running
    return G


@pytest.mark.parametrize("N", [None, 1, 5])
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (0.98, 0.0)])
def test_gae_matches_brute_force_with_episode_ends_inside(N, gamma, lam):
    rewards, values, dones, last_value = random_rollout(17, N, seed=3)
    assert dones.sum() > 0, "the test data should contain episode ends"
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma, lam)
    expected = brute_force_gae(rewards, values, dones, last_value, gamma, lam).reshape(rewards.shape)
    assert adv.shape == rewards.shape and ret.shape == rewards.shape
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, adv + values)


def test_lambda_zero_gives_td_errors():
    rewards, values, dones, last_value = random_rollout(20, 4, seed=1)
    gamma = 0.97
    adv, _ = compute_gae(rewards, values, dones, last_value, gamma, 0.0)
    next_values = torch.cat([values[1:], last_value[None]])
    expected = rewards + gamma * next_values * (1 - dones) - values
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(td_errors(rewards, values, dones, last_value, gamma), expected)


def test_lambda_one_gives_monte_carlo_return_minus_value():
    rewards, values, dones, last_value = random_rollout(25, 3, seed=2)
    gamma = 0.95
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma, 1.0)
    G = mc_returns(rewards, dones, last_value, gamma)
    torch.testing.assert_close(adv, G - values)
    torch.testing.assert_close(ret, G)


def test_done_blocks_bootstrap_from_next_state():
    # one step that ends the episode: A = r - V, whatever V(s_1) says
    adv, _ = compute_gae(
        torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor(100.0), 0.9, 0.9
    )
    torch.testing.assert_close(adv, torch.tensor([0.5]))
    # not done: bootstraps 0.9 * 100
    adv, _ = compute_gae(
        torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor(100.0), 0.9, 0.9
    )
    torch.testing.assert_close(adv, torch.tensor([90.5]))


def test_bool_dones_and_float32_work_and_values_get_no_gradient():
    rewards, values, dones, last_value = random_rollout(10, 2, seed=4)
    v = values.float().requires_grad_()
    adv, ret = compute_gae(rewards.float(), v, dones.bool(), last_value.float(), 0.99, 0.95)
    assert not adv.requires_grad and not ret.requires_grad
    expected = brute_force_gae(rewards, values, dones, last_value, 0.99, 0.95)
    torch.testing.assert_close(adv, expected.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(values=torch.zeros(4)), "same shape"),
        (dict(dones=torch.zeros(5, 2)), "same shape"),
        (dict(last_value=torch.zeros(4)), "last_value"),
        (dict(last_value=torch.zeros(())), "last_value"),
        (
            dict(rewards=torch.zeros(5, 3, 2), values=torch.zeros(5, 3, 2), dones=torch.zeros(5, 3, 2)),
            r"\(T,\)",
        ),
        (dict(gamma=1.5), "gamma"),
        (dict(lam=-0.1), "lam"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, match):
    args = dict(
        rewards=torch.zeros(5, 3), values=torch.zeros(5, 3), dones=torch.zeros(5, 3), last_value=torch.zeros(3),
        gamma=0.99, lam=0.95,
    )  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compute_gae(**args)


def test_error_message_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(4, 3\)"):
        compute_gae(torch.zeros(5, 3), torch.zeros(4, 3), torch.zeros(5, 3), torch.zeros(3), 0.9, 0.9)


def test_integer_rewards_are_computed_in_floating_point():
    rewards, values, dones, last_value = random_rollout(12, 3, seed=5)
    int_rewards = (rewards * 3).round().long()  # e.g. +1 / -2 per step, as an int tensor
    adv_int, ret_int = compute_gae(int_rewards, values, dones, last_value, 0.9, 0.8)
    adv_float, ret_float = compute_gae(int_rewards.double(), values, dones, last_value, 0.9, 0.8)
    assert adv_int.dtype == torch.float64
    torch.testing.assert_close(adv_int, adv_float)
    torch.testing.assert_close(ret_int, ret_float)
    # everything integer: computed in the default float dtype, not truncated
    adv, _ = compute_gae(torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                         torch.zeros(3, dtype=torch.long), torch.tensor(0), 0.5, 1.0)  # fmt: skip
    torch.testing.assert_close(adv, torch.tensor([1.75, 1.5, 1.0]))
