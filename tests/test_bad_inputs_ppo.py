"""Bad inputs to chapter 04's code (rlcourse.ppo, rlcourse.gae) get clear errors; no run loses its work.

Each case asserts the exception type and that the message names the offending argument (issue 12).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlcourse.checks import TrainingError, UserFunctionError
from rlcourse.gae import compute_gae, td_errors
from rlcourse.ppo import (
    PPOConfig,
    PPOResult,
    adaptive_kl_beta,
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    kl_penalty_loss,
    train_ppo,
)

NAN, INF = float("nan"), float("inf")


# ----- PPOConfig: every field is checked when the config is built ----------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(gamma=1.5), ValueError, r"PPOConfig\.gamma.*\[0\.0, 1\.0\].*1\.5"),
        (dict(gamma=-0.1), ValueError, r"PPOConfig\.gamma.*-0\.1"),
        (dict(gae_lambda=1.01), ValueError, r"PPOConfig\.gae_lambda.*1\.01"),
        (dict(clip_eps=0.0), ValueError, r"PPOConfig\.clip_eps.*> 0.*0\.0"),
        (dict(clip_eps=-0.2), ValueError, r"PPOConfig\.clip_eps.*-0\.2"),
        (dict(learning_rate=0.0), ValueError, r"PPOConfig\.learning_rate.*0\.0"),
        (dict(learning_rate=NAN), ValueError, r"PPOConfig\.learning_rate.*nan"),
        (dict(total_timesteps=100), ValueError, r"PPOConfig\.total_timesteps.*>= 256.*got 100.*one rollout"),
        (dict(total_timesteps=1e5), TypeError, r"PPOConfig\.total_timesteps.*integer.*100000"),
        (dict(num_envs=0), ValueError, r"PPOConfig\.num_envs.*got 0"),
        (dict(num_steps=-3), ValueError, r"PPOConfig\.num_steps.*got -3"),
        (
            dict(minibatch_size=512),
            ValueError,
            r"PPOConfig\.minibatch_size.*512.*num_envs \* num_steps = 256",
        ),
        (dict(update_epochs=0), ValueError, r"PPOConfig\.update_epochs.*got 0"),
        (dict(target_kl=0.0), ValueError, r"PPOConfig\.target_kl.*0\.0"),
        (dict(kl_target=-1.0), ValueError, r"PPOConfig\.kl_target.*-1\.0"),
        (dict(beta_init=0.0), ValueError, r"PPOConfig\.beta_init.*0\.0"),
        (dict(max_grad_norm=0.0), ValueError, r"PPOConfig\.max_grad_norm.*0\.0"),
        (dict(ent_coef=-0.01), ValueError, r"PPOConfig\.ent_coef.*-0\.01"),
        (dict(vf_coef=-1.0), ValueError, r"PPOConfig\.vf_coef.*-1\.0"),
        (dict(objective="trust_region"), ValueError, r"PPOConfig\.objective.*'clip'.*'trust_region'"),
        (dict(truncation="ignore"), ValueError, r"PPOConfig\.truncation.*'ignore'"),
        (dict(seed=-1), ValueError, r"PPOConfig\.seed.*-1"),
        (dict(seed=1.5), TypeError, r"PPOConfig\.seed.*1\.5"),
        (dict(window=0), ValueError, r"PPOConfig\.window.*0"),
        (dict(hidden=(64, 0)), ValueError, r"PPOConfig\.hidden.*\(64, 0\)"),
        (dict(anneal_lr="yes"), TypeError, r"PPOConfig\.anneal_lr.*'yes'"),
        (dict(env_id=""), TypeError, r"PPOConfig\.env_id"),
        (dict(target_return=INF), ValueError, r"PPOConfig\.target_return.*inf"),
    ],
)
def test_ppo_config_refuses(kwargs, error, match):
    with pytest.raises(error, match=match):
        PPOConfig(**kwargs)


def test_annealed_clip_range_never_goes_below_zero():
    # the linear schedule multiplies clip_eps > 0 by a fraction in [0, 1]; with total_timesteps a multiple
    # of the rollout the last update's fraction is exactly 0, and the loss accepts clip_eps = 0
    res = train_ppo(PPOConfig(seed=0, total_timesteps=512, update_epochs=1))
    assert len(res.kl) == 2 and all(math.isfinite(k) for k in res.kl)
    assert res.clip_fraction[-1] >= 0.0


# ----- the losses -----------------------------------------------------------------------------------------
def _x(*values: float) -> torch.Tensor:
    return torch.tensor(values)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: clipped_surrogate_loss(_x(0.0, NAN), _x(0.0, 0.0), _x(1.0, 1.0), 0.2), ValueError,
         r"logp_new.*nan.*index 1"),
        (lambda: clipped_surrogate_loss(_x(0.0, 0.0), _x(0.0, 0.0), _x(1.0, INF), 0.2), ValueError,
         r"advantages.*inf.*index 1"),
        (lambda: clipped_surrogate_loss(_x(0.0), _x(-INF), _x(1.0), 0.2), ValueError, r"logp_old.*index 0"),
        (lambda: clipped_surrogate_loss(_x(0.0), _x(0.0), _x(1.0), -0.1), ValueError, r"clip_eps.*-0\.1"),
        (lambda: clipped_surrogate_loss(_x(0.0), _x(0.0), _x(1.0), NAN), ValueError, r"clip_eps.*nan"),
        (lambda: clipped_surrogate_loss([0.0], _x(0.0), _x(1.0), 0.2), TypeError, r"logp_new.*torch\.Tensor"),
        (lambda: clipped_value_loss(_x(1.0), _x(0.0), _x(NAN), 0.2), ValueError, r"returns.*nan.*index 0"),
        (lambda: clipped_value_loss(_x(1.0), _x(0.0), _x(2.0), -1.0), ValueError, r"clip_eps.*-1\.0"),
        (lambda: kl_penalty_loss(_x(0.0), _x(0.0), _x(1.0), -0.5), ValueError, r"beta.*-0\.5"),
        (lambda: kl_penalty_loss(_x(NAN), _x(0.0), _x(1.0), 0.5), ValueError, r"logp_new.*nan"),
        (lambda: approx_kl(_x(0.0, 0.0), _x(0.0, INF)), ValueError, r"logp_old.*inf.*index 1"),
        (lambda: adaptive_kl_beta(1.0, NAN, 0.01), ValueError, r"kl.*nan"),
        (lambda: adaptive_kl_beta(-1.0, 0.01, 0.01), ValueError, r"beta.*-1\.0"),
        (lambda: adaptive_kl_beta(1.0, 0.01, 0.0), ValueError, r"kl_target.*0\.0"),
    ],
)  # fmt: skip
def test_losses_refuse(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nan_under_the_mask_does_not_leak_into_loss_or_gradient():
    logp_new = torch.tensor([[0.1, NAN], [0.2, 0.0]], requires_grad=True)
    logp_old = torch.tensor([[0.0, NAN], [0.1, INF]])
    adv = torch.tensor([[1.0, NAN], [-1.0, NAN]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    for loss in (
        clipped_surrogate_loss(logp_new, logp_old, adv, 0.2, mask=mask),
        kl_penalty_loss(logp_new, logp_old, adv, 0.1, mask=mask),
        approx_kl(logp_new, logp_old, mask=mask),
    ):
        assert math.isfinite(loss.item())
        (grad,) = torch.autograd.grad(loss, logp_new)
        assert torch.isfinite(grad).all() and grad[:, 1].eq(0).all()
    expected = clipped_surrogate_loss(logp_new[:, 0], logp_old[:, 0], adv[:, 0], 0.2)
    torch.testing.assert_close(clipped_surrogate_loss(logp_new, logp_old, adv, 0.2, mask=mask), expected)
    # inside the mask a NaN is still refused
    with pytest.raises(ValueError, match=r"logp_new.*index \(0, 1\)"):
        clipped_surrogate_loss(logp_new, torch.zeros(2, 2), torch.zeros(2, 2), 0.2, mask=torch.ones(2, 2))


# ----- GAE ------------------------------------------------------------------------------------------------
def _gae_args(**changes):
    args = dict(rewards=torch.ones(4, 2), values=torch.zeros(4, 2), dones=torch.zeros(4, 2),
                last_value=torch.zeros(2), gamma=0.99, lam=0.95)  # fmt: skip
    args.update(changes)
    return args


def _with(index, value, like=None):
    x = torch.zeros(4, 2) if like is None else like.clone()
    x[index] = value
    return x


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(rewards=_with((2, 1), NAN)), ValueError, r"rewards.*nan.*index \(2, 1\)"),
        (dict(values=_with((0, 0), -INF)), ValueError, r"values.*-inf.*index \(0, 0\)"),
        (dict(last_value=torch.tensor([0.0, NAN])), ValueError, r"last_value.*nan.*index 1"),
        (dict(dones=_with((1, 0), 2.0)), ValueError, r"dones.*only 0 and 1.*2\.0.*\(1, 0\)"),
        (dict(dones=_with((3, 1), -1.0)), ValueError, r"dones.*-1\.0"),
        (dict(gamma=1.01), ValueError, r"gamma.*1\.01"),
        (dict(lam=NAN), ValueError, r"lam.*nan"),
        (dict(gamma="0.9"), TypeError, r"gamma.*'0\.9'"),
        (dict(rewards=[1.0, 1.0, 1.0, 1.0]), TypeError, r"rewards.*torch\.Tensor"),
        (dict(values=torch.zeros(4)), ValueError, r"same shape"),
    ],
)
def test_gae_refuses(changes, error, match):
    with pytest.raises(error, match=match):
        compute_gae(**_gae_args(**changes))


def test_td_errors_checks_like_compute_gae():
    with pytest.raises(ValueError, match=r"rewards.*nan"):
        td_errors(_with((0, 0), NAN), torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(2), 0.9)
    with pytest.raises(ValueError, match=r"gamma.*-0\.5"):
        td_errors(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(2), -0.5)


# ----- train_ppo: no lost work ----------------------------------------------------------------------------
SHORT = dict(seed=0, total_timesteps=2048, update_epochs=2)  # 8 updates of 256 env steps


def test_callback_sees_every_update():
    calls = []
    res = train_ppo(PPOConfig(**SHORT), callback=lambda step, hist: calls.append((step, len(hist.kl))))
    assert calls == [(k, k) for k in range(1, 9)] and isinstance(res, PPOResult)


def test_failing_callback_mid_run_keeps_the_completed_history():
    def callback(step: int, history: PPOResult) -> None:
        if step == 3:
            raise RuntimeError("my logger broke")

    with pytest.raises(
        TrainingError, match=r"train_ppo stopped at step 3.*callback.*my logger broke"
    ) as info:
        train_ppo(PPOConfig(**SHORT), callback=callback)
    err = info.value
    assert err.step == 3 and isinstance(err.history, PPOResult)
    assert len(err.history.kl) == 3 and err.history.env_steps == 3 * 256
    assert isinstance(err.__cause__, UserFunctionError) and "callback" in str(err.__cause__)
    # the completed history equals an uninterrupted run's first three updates
    full = train_ppo(PPOConfig(**SHORT))
    assert err.history.kl == full.kl[:3]


def test_ctrl_c_returns_what_was_trained(capsys):
    def callback(step: int, history: PPOResult) -> None:
        if step == 2:
            raise KeyboardInterrupt

    res = train_ppo(PPOConfig(**SHORT), callback=callback)
    assert len(res.kl) == 2 and res.env_steps == 512 and res.wall_time > 0
    assert "interrupted at step 2" in capsys.readouterr().out


def test_train_ppo_refuses_a_bad_config_or_callback_before_training():
    with pytest.raises(TypeError, match="cfg must be a PPOConfig"):
        train_ppo({"seed": 0})
    with pytest.raises(TypeError, match="callback"):
        train_ppo(PPOConfig(**SHORT), callback="print")
    with pytest.raises(ValueError, match=r"env_id='NoSuchEnv-v0'"):
        train_ppo(PPOConfig(env_id="NoSuchEnv-v0", total_timesteps=512))
