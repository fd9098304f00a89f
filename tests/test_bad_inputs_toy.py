"""Bad inputs to the toy track (chapters 01-03: ``rlcourse.pg``, ``rlcourse.trpo``) get clear errors (issue 12).

Every case asserts the exception type and that the message names the offending argument; the
trainers keep the completed steps' history when a callback fails mid-run, and return it on Ctrl-C.
"""

import math

import pytest
import torch

from rlcourse.checks import TrainingError
from rlcourse.envs import discounted_return, returns_to_go
from rlcourse.pg import (
    ReinforceConfig,
    fit_value,
    full_return,
    gradient_samples,
    make_envs,
    reinforce_loss,
    reward_to_go,
    train_reinforce,
)
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.trpo import (
    PolicyBatch,
    TRPOConfig,
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    train_trpo,
    trpo_step,
)

# ----- configs: (kwargs, exception, words the message must contain) ---------------------------------

REINFORCE_CASES = [
    ({"gamma": 1.5}, ValueError, ["ReinforceConfig.gamma", "1.5", "[0.0, 1.0]"]),
    ({"gamma": float("nan")}, ValueError, ["gamma", "nan"]),
    ({"iterations": 0}, ValueError, ["iterations", ">= 1"]),
    ({"episodes_per_batch": 2.0}, TypeError, ["episodes_per_batch", "integer", "did you mean 2"]),
    ({"lr": 0.0}, ValueError, ["lr", "> 0.0"]),
    ({"lr": "1e-2"}, TypeError, ["lr", "number"]),
    ({"use_baseline": "yes"}, TypeError, ["use_baseline", "True or False"]),
    ({"hidden": (32, 0)}, ValueError, ["hidden[1]", ">= 1"]),
    ({"hidden": 32}, TypeError, ["hidden", "(32,)"]),
    ({"vf_iters": -1}, ValueError, ["vf_iters"]),
    ({"vf_lr": -0.1}, ValueError, ["vf_lr"]),
    ({"seed": -1}, ValueError, ["seed", "non-negative"]),
    ({"device": "gpu0"}, ValueError, ["device", "gpu0"]),
    ({"env_id": ""}, ValueError, ["env_id", "CartPole-v1"]),
]

TRPO_CASES = [
    ({"delta": -0.01}, ValueError, ["TRPOConfig.delta", "-0.01", "> 0.0"]),
    ({"delta": 0}, ValueError, ["delta", "> 0.0"]),
    ({"damping": -0.1}, ValueError, ["damping", ">= 0.0"]),
    ({"update": "natural"}, ValueError, ["update", "'trpo'", "'vanilla'", "natural"]),
    ({"backtrack_coef": 1.0}, ValueError, ["backtrack_coef", "(0.0, 1.0)"]),
    ({"backtrack_iters": 0}, ValueError, ["backtrack_iters"]),
    ({"cg_iters": 0}, ValueError, ["cg_iters"]),
    ({"vanilla_lr": -1.0}, ValueError, ["vanilla_lr"]),
    ({"gamma": -0.5}, ValueError, ["TRPOConfig.gamma"]),
    ({"iterations": 2.5}, TypeError, ["TRPOConfig.iterations", "integer"]),
]


def _assert_names(exc_info, words):
    msg = str(exc_info.value)
    for w in words:
        assert w in msg, f"{w!r} not in message: {msg}"


@pytest.mark.parametrize(("kwargs", "exc", "words"), REINFORCE_CASES)
def test_reinforce_config_refuses_bad_fields(kwargs, exc, words):
    with pytest.raises(exc) as e:
        ReinforceConfig(**kwargs)
    _assert_names(e, words)


@pytest.mark.parametrize(("kwargs", "exc", "words"), TRPO_CASES)
def test_trpo_config_refuses_bad_fields(kwargs, exc, words):
    with pytest.raises(exc) as e:
        TRPOConfig(**kwargs)
    _assert_names(e, words)


def test_good_configs_still_build():
    assert ReinforceConfig().gamma == 0.99 and ReinforceConfig(gamma=1, lr=1).lr == 1
    assert TRPOConfig(damping=0.0, update="vanilla").damping == 0.0


# ----- returns and the loss: no silent numbers -----------------------------------------------------

RETURN_CASES = [
    (torch.tensor([1.0, float("nan"), 1.0]), torch.zeros(3), 0.9, ValueError, ["rewards", "index 1", "nan"]),
    (torch.tensor([1.0, 1.0, float("inf")]), torch.zeros(3), 0.9, ValueError, ["rewards", "index 2"]),
    (torch.tensor([1, 2, 3]), torch.zeros(3), 0.9, TypeError, ["rewards", "floating-point", ".float()"]),
    (torch.ones(3), torch.tensor([0.0, 2.0, 1.0]), 0.9, ValueError, ["dones", "0 and 1", "index 1"]),
    (torch.ones(3), torch.tensor([0.5, 0.0, 1.0]), 0.9, ValueError, ["dones", "0.5"]),
    (torch.ones(3), torch.zeros(3), -0.1, ValueError, ["gamma", "-0.1"]),
    ([1.0, 1.0], torch.zeros(2), 0.9, TypeError, ["rewards", "torch.as_tensor"]),
]


@pytest.mark.parametrize("fn", [reward_to_go, full_return])
@pytest.mark.parametrize(("rewards", "dones", "gamma", "exc", "words"), RETURN_CASES)
def test_returns_refuse_bad_numbers(fn, rewards, dones, gamma, exc, words):
    with pytest.raises(exc) as e:
        fn(rewards, dones, gamma)
    _assert_names(e, words)


@pytest.mark.parametrize("fn", [discounted_return, returns_to_go])
def test_chapter_01_returns_refuse_nan_rewards_and_bad_gamma(fn):
    with pytest.raises(ValueError) as e:
        fn([0.0, math.nan, 1.0], 0.9)
    _assert_names(e, ["rewards", "index 1"])
    with pytest.raises(ValueError) as e:
        fn([0.0, 1.0], 1.2)
    _assert_names(e, ["gamma", "1.2"])


def test_returns_accept_bool_dones():
    got = reward_to_go(torch.ones(3), torch.tensor([False, True, False]), 1.0)
    torch.testing.assert_close(got, torch.tensor([2.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("logp", "weights", "exc", "words"),
    [
        (torch.zeros(3), torch.tensor([1.0, math.nan, 0.0]), ValueError, ["weights", "index 1"]),
        (torch.zeros(3), torch.tensor([1, 2, 3]), TypeError, ["weights", "floating-point"]),
        (torch.tensor([0.0, -math.inf, 0.0]), torch.ones(3), ValueError, ["logp", "index 1"]),
    ],
)
def test_reinforce_loss_refuses_bad_numbers(logp, weights, exc, words):
    with pytest.raises(exc) as e:
        reinforce_loss(logp, weights)
    _assert_names(e, words)


def test_fit_value_and_make_envs_refuse_bad_counts():
    net = ValueNet(4, (8,))
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(ValueError) as e:
        fit_value(net, opt, torch.zeros(5, 4), torch.zeros(5), iters=0)
    _assert_names(e, ["iters", ">= 1"])
    with pytest.raises(ValueError) as e:
        fit_value(net, opt, torch.zeros(2, 4), torch.tensor([0.0, math.nan]), iters=1)
    _assert_names(e, ["targets", "index 1"])
    with pytest.raises(ValueError) as e:
        make_envs("CartPole-v1", 0)
    _assert_names(e, ["num_envs", ">= 1"])


def test_gradient_samples_refuses_one_batch_before_collecting():
    with pytest.raises(ValueError) as e:
        gradient_samples(CategoricalPolicy(4, 2, (8,)), lambda obs: torch.zeros(obs.shape[0]), n_batches=1)
    _assert_names(e, ["n_batches", ">= 2"])


# ----- TRPO functions: values outside their domain -------------------------------------------------


def _tiny():
    torch.manual_seed(0)
    policy = CategoricalPolicy(3, 2, (4,))
    obs = torch.randn(6, 3)
    with torch.no_grad():
        logits_old = policy(obs)
    from rlcourse.trpo import categorical_kl

    return policy, obs, list(policy.parameters()), (lambda: categorical_kl(logits_old, policy(obs)).mean())


def test_fisher_vector_product_refuses_negative_damping():
    _, _, params, kl = _tiny()
    with pytest.raises(ValueError) as e:
        fisher_vector_product(kl, params, damping=-0.1)
    _assert_names(e, ["damping", "-0.1"])


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"iters": 0}, ValueError, ["iters", ">= 1"]),
        ({"iters": 3.0}, TypeError, ["iters", "integer"]),
        ({"tol": -1.0}, ValueError, ["tol"]),
        ({"b": torch.tensor([1.0, math.nan])}, ValueError, ["b", "index 1"]),
    ],
)
def test_conjugate_gradient_refuses_bad_arguments(kwargs, exc, words):
    args = {"Avp": lambda v: v, "b": torch.ones(2)} | kwargs
    with pytest.raises(exc) as e:
        conjugate_gradient(**args)
    _assert_names(e, words)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_kl": -0.01}, ["max_kl", "-0.01"]),
        ({"max_kl": 0.0}, ["max_kl"]),
        ({"backtrack_coef": 1.5}, ["backtrack_coef", "1.5"]),
        ({"backtrack_iters": 0}, ["backtrack_iters"]),
        ({"surrogate_old": math.nan}, ["surrogate_old"]),
        ({"full_step": torch.tensor([math.inf])}, ["full_step", "index 0"]),
    ],
)
def test_line_search_refuses_bad_arguments(kwargs, words):
    w = torch.nn.Parameter(torch.tensor([0.0]))
    args = {
        "params": [w],
        "full_step": torch.tensor([1.0]),
        "evaluate": lambda: (w.item(), w.item() ** 2),
        "surrogate_old": 0.0,
        "max_kl": 0.5,
    } | kwargs
    with pytest.raises(ValueError) as e:
        backtracking_line_search(**args)
    _assert_names(e, words)
    torch.testing.assert_close(w.detach(), torch.tensor([0.0]))  # nothing moved


def test_policy_batch_refuses_nan_advantages_and_float_actions():
    with pytest.raises(ValueError) as e:
        PolicyBatch(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), torch.tensor([0.0, 0.0, math.nan]))
    _assert_names(e, ["advantages", "index 2"])
    with pytest.raises(TypeError) as e:
        PolicyBatch(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3))
    _assert_names(e, ["actions", "integer", ".long()"])


def test_trainers_and_step_refuse_the_wrong_config():
    policy = CategoricalPolicy(4, 2, (8,))
    batch = PolicyBatch(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), torch.zeros(3))
    with pytest.raises(TypeError) as e:
        trpo_step(policy, batch, ReinforceConfig())
    _assert_names(e, ["cfg", "TRPOConfig", "ReinforceConfig"])
    with pytest.raises(TypeError) as e:
        train_reinforce({"iterations": 3})
    _assert_names(e, ["cfg", "ReinforceConfig", "dict"])
    with pytest.raises(TypeError) as e:
        train_trpo(ReinforceConfig())
    _assert_names(e, ["cfg", "TRPOConfig"])


# ----- no lost work --------------------------------------------------------------------------------


def _fail_at(step_to_fail, exc=ValueError):
    seen = []

    def callback(step, history):
        seen.append((step, len(history.update_mean_return)))
        if step == step_to_fail:
            raise exc("boom")

    return callback, seen


@pytest.mark.parametrize(
    ("train", "cfg"),
    [
        (train_reinforce, ReinforceConfig(iterations=6, episodes_per_batch=2, use_baseline=True)),
        (train_trpo, TRPOConfig(iterations=6, episodes_per_batch=2)),
    ],
)
def test_failing_callback_mid_run_keeps_the_completed_history(train, cfg):
    callback, seen = _fail_at(3)
    with pytest.raises(TrainingError) as e:
        train(cfg, callback=callback)
    err = e.value
    assert seen == [(1, 1), (2, 2), (3, 3)]  # called after every completed update, with the history so far
    assert err.step == 3 and len(err.history.update_mean_return) == 3
    assert len(err.history.episode_returns) == 3 * cfg.episodes_per_batch
    assert err.history.seconds > 0
    _assert_names(e, [train.__name__, "step 3", "callback", "boom"])
    assert isinstance(err.__cause__.__cause__, ValueError)  # the user's own exception is chained


def test_trpo_history_is_consistent_when_it_stops():
    callback, _ = _fail_at(2)
    with pytest.raises(TrainingError) as e:
        train_trpo(TRPOConfig(iterations=4, episodes_per_batch=2), callback=callback)
    h = e.value.history
    lengths = {len(x) for x in (h.update_mean_return, h.update_kl, h.update_accepted, h.update_cos_grad)}
    assert lengths == {2}


def test_keyboard_interrupt_returns_what_was_trained(capsys):
    callback, _ = _fail_at(2, exc=KeyboardInterrupt)
    policy, hist = train_reinforce(ReinforceConfig(iterations=5, episodes_per_batch=2), callback=callback)
    assert isinstance(policy, CategoricalPolicy) and len(hist.update_mean_return) == 2
    assert "interrupted at step 2" in capsys.readouterr().out


def test_positional_progress_argument_still_works():
    _, hist = train_reinforce(ReinforceConfig(iterations=1, episodes_per_batch=1), False)
    assert len(hist.update_mean_return) == 1
