"""PPO losses (rlcourse.ppo) against hand-computed values and CleanRL's formulas; a short training run."""

import math

import numpy as np
import pytest
import torch

from rlcourse.ppo import (
    PPOConfig,
    adaptive_kl_beta,
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    kl_penalty_loss,
    train_ppo,
)


def test_clipped_surrogate_by_hand():
    # ratios 1.5 (A=+1, clipped at 1.2), 0.5 (A=-1, clipped at 0.8), 1.1 (A=+2, inside the range)
    logp_old = torch.zeros(3)
    logp_new = torch.log(torch.tensor([1.5, 0.5, 1.1])).requires_grad_()
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss = clipped_surrogate_loss(logp_new, logp_old, adv, 0.2)
    torch.testing.assert_close(loss, torch.tensor((-1.2 + 0.8 - 2.2) / 3))
    loss.backward()
    # clipped elements give no gradient; the third gives d/dlogp (-r A / 3) = -1.1 * 2 / 3
    torch.testing.assert_close(logp_new.grad, torch.tensor([0.0, 0.0, -2.2 / 3]))


def test_clipped_surrogate_keeps_the_pessimistic_side():
    # A > 0 but ratio fell to 0.5: min picks r A = 0.5 (unclipped), so the gradient pushes it back up
    logp_new = torch.log(torch.tensor([0.5])).requires_grad_()
    loss = clipped_surrogate_loss(logp_new, torch.zeros(1), torch.tensor([1.0]), 0.2)
    torch.testing.assert_close(loss, torch.tensor(-0.5))
    loss.backward()
    assert logp_new.grad.item() < 0


def test_clipped_surrogate_equals_cleanrl_formula_on_random_data():
    g = torch.Generator().manual_seed(0)
    logp_new, logp_old, adv = (torch.randn(64, generator=g) * 0.3 for _ in range(3))
    ratio = (logp_new - logp_old).exp()
    cleanrl = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)).mean()
    torch.testing.assert_close(clipped_surrogate_loss(logp_new, logp_old, adv, 0.2), cleanrl)


def test_clipped_value_loss_by_hand():
    v_old, v_new, ret = torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.9]), torch.tensor([1.0, 0.0])
    # element 1: max((0.5-1)^2, (0+0.2-1)^2) = 0.64; element 2: max(0.81, (1-0.1-0)^2) = 0.81
    torch.testing.assert_close(
        clipped_value_loss(v_new, v_old, ret, 0.2), torch.tensor(0.5 * (0.64 + 0.81) / 2)
    )
    # with a huge eps it is the plain 0.5 * MSE
    torch.testing.assert_close(
        clipped_value_loss(v_new, v_old, ret, 100.0), 0.5 * ((v_new - ret) ** 2).mean()
    )


def test_approx_kl_and_penalty_by_hand():
    logp_old = torch.zeros(2)
    logp_new = torch.log(torch.tensor([2.0, 1.0]))
    kl = (2 - 1 - math.log(2) + 0.0) / 2
    torch.testing.assert_close(approx_kl(logp_new, logp_old), torch.tensor(kl))
    torch.testing.assert_close(approx_kl(logp_old, logp_old), torch.tensor(0.0))
    adv = torch.tensor([1.0, 3.0])
    expected = -(2 * 1 + 1 * 3) / 2 + 0.5 * kl
    torch.testing.assert_close(kl_penalty_loss(logp_new, logp_old, adv, beta=0.5), torch.tensor(expected))


def test_approx_kl_estimates_the_true_kl():
    g = torch.Generator().manual_seed(0)
    p_old, p_new = torch.tensor([0.2, 0.5, 0.3]), torch.tensor([0.3, 0.3, 0.4])
    actions = torch.multinomial(p_old, 200_000, replacement=True, generator=g)
    estimate = approx_kl(p_new.log()[actions], p_old.log()[actions])
    exact = (p_old * (p_old / p_new).log()).sum()
    torch.testing.assert_close(estimate, exact, atol=3e-3, rtol=0)


def test_masks_average_over_selected_elements_only():
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.randn(4, 6, generator=g) for _ in range(3))
    mask = torch.zeros(4, 6)
    mask[:, :3] = 1
    sel = mask.bool()
    torch.testing.assert_close(
        clipped_surrogate_loss(a, b, c, 0.2, mask=mask), clipped_surrogate_loss(a[sel], b[sel], c[sel], 0.2)
    )
    torch.testing.assert_close(
        clipped_value_loss(a, b, c, 0.2, mask=mask), clipped_value_loss(a[sel], b[sel], c[sel], 0.2)
    )
    torch.testing.assert_close(approx_kl(a, b, mask=mask), approx_kl(a[sel], b[sel]))
    torch.testing.assert_close(
        kl_penalty_loss(a, b, c, 0.1, mask=mask), kl_penalty_loss(a[sel], b[sel], c[sel], 0.1)
    )


@pytest.mark.parametrize(
    "kl,expected",
    [(0.001, 0.5), (0.01 / 1.5 - 1e-6, 0.5), (0.01 / 1.5, 1.0), (0.01, 1.0), (0.015, 1.0), (0.02, 2.0)],
)
def test_adaptive_kl_beta_rule(kl, expected):
    assert adaptive_kl_beta(1.0, kl, 0.01) == pytest.approx(expected)


def test_bad_inputs_raise_value_error():
    x3, x4 = torch.zeros(3), torch.zeros(4)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        clipped_surrogate_loss(x3, x3, x4, 0.2)
    with pytest.raises(ValueError, match="same shape"):
        clipped_surrogate_loss(torch.zeros(3, 1), x3, x3, 0.2)  # would broadcast to (3, 3)
    with pytest.raises(ValueError, match="same shape"):
        clipped_value_loss(x3, x4, x3, 0.2)
    with pytest.raises(ValueError, match="same shape"):
        clipped_value_loss(x3, x3, x3, 0.2, mask=x4)
    with pytest.raises(ValueError, match="empty"):
        clipped_surrogate_loss(torch.zeros(0), torch.zeros(0), torch.zeros(0), 0.2)
    with pytest.raises(ValueError, match="no element"):
        approx_kl(x3, x3, mask=torch.zeros(3))
    with pytest.raises(ValueError, match="clip_eps"):
        clipped_surrogate_loss(x3, x3, x3, -0.1)
    with pytest.raises(ValueError, match="beta"):
        adaptive_kl_beta(0.0, 0.01, 0.01)
    with pytest.raises(ValueError, match="kl_target"):
        adaptive_kl_beta(1.0, 0.01, 0.0)
    with pytest.raises(ValueError, match="objective"):
        PPOConfig(objective="trust_region")
    with pytest.raises(ValueError, match="truncation"):
        PPOConfig(truncation="ignore")
    with pytest.raises(ValueError, match="minibatch_size"):
        PPOConfig(num_envs=2, num_steps=8, minibatch_size=64, total_timesteps=1024)
    with pytest.raises(ValueError, match="discrete"):
        train_ppo(PPOConfig(env_id="Pendulum-v1", total_timesteps=512))


def test_short_seeded_ppo_run_improves_the_return():
    res = train_ppo(PPOConfig(seed=0, total_timesteps=12_000))
    first, last = sum(res.episode_returns[:20]) / 20, res.last_mean(20)
    assert last > 3 * first and last > 100, (first, last)
    assert res.env_steps == 12_000 // 256 * 256
    assert len(res.kl) == len(res.clip_fraction) == len(res.epochs) == 12_000 // 256
    assert all(k >= 0 for k in res.kl)


def test_ppo_penalty_adapts_beta_and_the_run_is_reproducible():
    cfg = PPOConfig(seed=1, total_timesteps=4096, objective="kl_penalty", clip_value=True)
    a, b = train_ppo(cfg), train_ppo(cfg)
    assert a.episode_returns == b.episode_returns
    assert len(set(a.beta)) > 1 and a.beta[0] == cfg.beta_init


def test_target_return_stops_the_run_early():
    res = train_ppo(PPOConfig(seed=0, total_timesteps=50_000, target_return=60.0, window=5))
    assert res.solved_step is not None and res.env_steps == res.solved_step < 50_000
    assert res.last_mean(5) >= 60.0


def test_steps_to_reach_matches_early_stopping():
    full = train_ppo(PPOConfig(seed=2, total_timesteps=8192))
    stopped = train_ppo(PPOConfig(seed=2, total_timesteps=8192, target_return=40.0, window=5))
    assert stopped.solved_step is not None
    assert full.steps_to_reach(40.0, n=5) == stopped.solved_step
    assert full.steps_to_reach(1e9) is None


def test_trained_networks_can_be_saved_with_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    res = train_ppo(PPOConfig(seed=0, total_timesteps=512))
    save_file(res.policy.state_dict(), tmp_path / "policy.safetensors")
    loaded = load_file(tmp_path / "policy.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in res.policy.state_dict().items())


def test_target_kl_stops_epochs_early_and_lowers_the_kl():
    base = dict(seed=0, total_timesteps=10_240)
    free, stopped = train_ppo(PPOConfig(**base)), train_ppo(PPOConfig(**base, target_kl=0.005))
    assert free.epochs == [20] * len(free.kl)
    assert min(stopped.epochs) >= 1 and sum(stopped.epochs) < sum(free.epochs)
    assert max(stopped.kl) < max(free.kl)


def test_value_clipping_range_is_not_annealed(monkeypatch):
    # the value's clip range is clip_eps itself (CleanRL), while the ratio's decays with the schedule
    import rlcourse.ppo.train as train

    seen = []
    real = train.clipped_value_loss

    def spy(v, v_old, ret, eps):
        seen.append(eps)
        return real(v, v_old, ret, eps)

    monkeypatch.setattr(train, "clipped_value_loss", spy)
    res = train_ppo(PPOConfig(seed=0, total_timesteps=2048, update_epochs=1, clip_value=True))
    assert len(res.kl) == 8 and seen == [0.2] * 8


def test_shuffled_minibatches_learn():
    # minibatch_size < rollout: shuffled minibatches, advantages normalised per minibatch
    res = train_ppo(
        PPOConfig(
            seed=0, total_timesteps=12_288, num_envs=4, num_steps=64, minibatch_size=64, update_epochs=4
        )
    )
    assert len(res.kl) == 12_288 // 256 and all(math.isfinite(k) for k in res.kl)
    first, last = np.mean(res.episode_returns[:20]), res.last_mean(20)
    assert last > 2 * first, f"mean return of the first 20 episodes {first:.1f}, of the last 20 {last:.1f}"
