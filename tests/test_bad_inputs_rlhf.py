"""Bad input to rlcourse.rlhf, rlcourse.reward_model and rlcourse.lm.tasks gets a clear error naming the
argument (issue 12); NaN never leaks from a masked position; no run loses its completed steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcourse.checks import TrainingError
from rlcourse.reward_model import (
    RewardModelConfig,
    bradley_terry_loss,
    calibration_curve,
    preference_probability,
    train_reward_model,
)
from rlcourse.rlhf import (
    RLHFConfig,
    check_rewards,
    make_critic,
    masked_whiten,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    token_gae,
    train_ppo,
)

# ----------------------------------------------------------------------------- configs check themselves
RLHF_CASES = [
    (dict(kl_coef=-0.1), ValueError, "kl_coef"),
    (dict(kl_coef=float("nan")), ValueError, "kl_coef"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.0), TypeError, "batch_size"),
    (dict(total_batches=0), ValueError, "total_batches"),
    (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(gamma=1.5), ValueError, "gamma"),
    (dict(lam=-0.1), ValueError, "lam"),
    (dict(clip_eps=0.0), ValueError, "clip_eps"),
    (dict(value_clip_eps=-0.2), ValueError, "value_clip_eps"),
    (dict(vf_coef=-1.0), ValueError, "vf_coef"),
    (dict(ppo_epochs=0), ValueError, "ppo_epochs"),
    (dict(minibatches=64, batch_size=32), ValueError, "minibatches"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr="3e-4"), TypeError, "lr"),
    (dict(max_grad_norm=0.0), ValueError, "max_grad_norm"),
    (dict(whiten_advantages="yes"), TypeError, "whiten_advantages"),
    (dict(missing_eos_penalty=-1.0), ValueError, "missing_eos_penalty"),
    (dict(seed=-1), ValueError, "seed"),
]


@pytest.mark.parametrize("kwargs, exc, name", RLHF_CASES)
def test_rlhf_config_refuses_bad_fields(kwargs, exc, name):
    with pytest.raises(exc, match=f"RLHFConfig.{name}") as info:
        RLHFConfig(**kwargs)
    assert repr(next(iter(kwargs.values())))[:4] in str(info.value) or exc is TypeError


RM_CASES = [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(batch_size=1.5), TypeError, "batch_size"),
    (dict(lr=-1e-3), ValueError, "lr"),
    (dict(center_coef=-0.01), ValueError, "center_coef"),
    (dict(max_grad_norm=0), ValueError, "max_grad_norm"),
    (dict(seed=0.5), TypeError, "seed"),
]


@pytest.mark.parametrize("kwargs, exc, name", RM_CASES)
def test_reward_model_config_refuses_bad_fields(kwargs, exc, name):
    with pytest.raises(exc, match=f"RewardModelConfig.{name}"):
        RewardModelConfig(**kwargs)


def test_config_message_gives_range_value_and_fix():
    with pytest.raises(ValueError) as info:
        RLHFConfig(kl_coef=-0.5)
    msg = str(info.value)
    assert "RLHFConfig.kl_coef" in msg and "-0.5" in msg and ">= 0" in msg and "Fix" in msg


# ----------------------------------------------------------------------------- no silent numbers
def _mask():
    return torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]])


def test_nan_score_is_refused_with_its_index():
    with pytest.raises(ValueError, match=r"scores contains a non-finite value \(nan\) at index 1"):
        per_token_rewards(
            torch.tensor([0.0, float("nan")]), torch.zeros(2, 4), torch.zeros(2, 4), _mask(), 0.1
        )


def test_nan_logp_inside_the_mask_is_refused_and_outside_it_does_not_leak():
    logp = torch.zeros(2, 4)
    logp[0, 0] = float("nan")  # a prompt position: masked out
    r = per_token_rewards(torch.ones(2), logp, torch.zeros(2, 4), _mask(), 0.1)
    assert torch.isfinite(r).all() and r[0, 0] == 0
    logp[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"logp contains a non-finite value \(inf\) at index \(1, 2\)"):
        per_token_rewards(torch.ones(2), logp, torch.zeros(2, 4), _mask(), 0.1)


def test_token_gae_masked_nan_does_not_leak_and_inside_nan_is_refused():
    rewards, values = torch.ones(2, 4), torch.zeros(2, 4)
    rewards[0, 3], values[1, 0] = float("nan"), float("nan")  # both off the mask
    adv, ret = token_gae(rewards, values, _mask())
    assert torch.isfinite(adv).all() and torch.isfinite(ret).all()
    values[0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"values contains a non-finite value .* at index \(0, 1\)"):
        token_gae(rewards, values, _mask())


def test_integer_rewards_are_computed_in_float():
    rewards = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 3]])
    adv_i, ret_i = token_gae(rewards, torch.zeros(2, 4), _mask(), gamma=0.5, lam=1.0)
    adv_f, ret_f = token_gae(rewards.float(), torch.zeros(2, 4), _mask(), gamma=0.5, lam=1.0)
    torch.testing.assert_close(ret_i, ret_f)
    assert ret_i[0, 1].item() == pytest.approx(1.5)  # 1 + 0.5 * 1, not truncated to an integer


def test_token_gae_refuses_gamma_out_of_range():
    with pytest.raises(ValueError, match="gamma"):
        token_gae(torch.zeros(2, 4), torch.zeros(2, 4), _mask(), gamma=1.5)


def test_all_zero_completion_mask_is_a_clear_error():
    with pytest.raises(ValueError, match="no completion token"):
        masked_whiten(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"completion_mask rows \[1\]"):
        per_token_rewards(
            torch.zeros(2), torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([[0, 1, 0, 0], [0] * 4]), 0.1
        )


def test_policy_loss_refuses_negative_clip_and_nan_advantages():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="clip_eps"):
        ppo_policy_loss(x, x, x, _mask(), -0.2)
    adv = torch.zeros(2, 4)
    adv[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"advantages contains .* at index \(1, 3\)"):
        ppo_policy_loss(x, x, adv, _mask(), 0.2)
    adv = torch.zeros(2, 4)
    adv[1, 0] = float("nan")  # masked out: must not leak
    assert torch.isfinite(ppo_policy_loss(x, x, adv, _mask(), 0.2))


def test_value_loss_masked_nan_does_not_leak():
    v = torch.zeros(2, 4)
    v[0, 0] = float("nan")
    loss = ppo_value_loss(v, torch.zeros(2, 4), torch.ones(2, 4), _mask(), 0.2)
    assert loss.item() == pytest.approx(0.5)


def test_bradley_terry_refuses_nan_and_computes_integers_in_float():
    with pytest.raises(ValueError, match=r"rejected_scores contains .* at index 2"):
        bradley_terry_loss(torch.zeros(3), torch.tensor([0.0, 1.0, float("nan")]))
    a, b = torch.tensor([2, 0]), torch.tensor([0, 1])
    torch.testing.assert_close(bradley_terry_loss(a, b), bradley_terry_loss(a.float(), b.float()))
    with pytest.raises(TypeError, match="chosen_scores must be a torch.Tensor"):
        bradley_terry_loss([1.0], torch.zeros(1))


def test_preference_probability_and_calibration_bad_inputs():
    with pytest.raises(ValueError, match="scale"):
        preference_probability(torch.zeros(2), torch.zeros(2), scale=0.0)
    with pytest.raises(ValueError, match=r"predicted contains a non-finite value"):
        calibration_curve(np.array([0.5, np.nan]), np.array([1.0, 0.0]))
    with pytest.raises(TypeError, match="n_bins"):
        calibration_curve(np.array([0.5]), np.array([1.0]), n_bins=2.5)


class _FakeRollout:
    def __init__(self, b: int):
        self.input_ids = torch.zeros(b, 3, dtype=torch.long)


@pytest.mark.parametrize(
    "returned, exc, words",
    [
        ([1.0, 0.0], TypeError, "got a list of length 2"),
        (torch.zeros(3), ValueError, r"got shape \(3,\)"),
        (torch.zeros(2, 1), ValueError, r"got shape \(2, 1\)"),
        (torch.tensor([True, False]), TypeError, "dtype torch.bool"),
        (torch.tensor([0.0, float("nan")]), ValueError, "non-finite"),
    ],
)
def test_reward_function_contract(returned, exc, words):
    with pytest.raises(exc, match=words) as info:
        check_rewards(returned, _FakeRollout(2))
    if exc is not ValueError or "shape" in words:
        assert "shape (2,)" in str(info.value)


def test_reward_function_integers_become_floats():
    out = check_rewards(torch.tensor([1, 0]), _FakeRollout(2))
    assert out.dtype == torch.float32 and out.tolist() == [1.0, 0.0]


def test_unseen_by_sft_checks_its_arguments_and_is_disjoint():
    from rlcourse.lm.tasks import ArithmeticTask

    task = ArithmeticTask()
    with pytest.raises(ValueError, match="steps"):
        task.unseen_by_sft(steps=-1, batch_size=64, seed=1)
    with pytest.raises(TypeError, match="batch_size"):
        task.unseen_by_sft(steps=5, batch_size=6.4, seed=1)
    unseen = task.unseen_by_sft(steps=5, batch_size=64, seed=1)
    rng = np.random.default_rng(1)
    drawn = {p for _ in range(5) for p in task.sample_prompts(64, rng)}  # the SFT run's draws, replayed
    assert not drawn & set(unseen) and not set(task.heldout_prompts) & set(unseen)
    assert len(unseen) == len(task.train_prompts) - len(drawn)


# ----------------------------------------------------------------------------- no lost work
def _tiny_models():
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import frozen_copy, tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    policy = GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2))
    policy.eval()
    return policy, frozen_copy(policy), make_critic(policy), tok


def _length_reward(rollout):
    return rollout.completion_lengths.float() / 10


def test_train_ppo_failing_reward_function_keeps_the_completed_history():
    policy, ref, critic, tok = _tiny_models()
    calls = []

    def flaky_reward(rollout):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("judge offline")
        return _length_reward(rollout)

    cfg = RLHFConfig(total_batches=5, batch_size=4, max_new_tokens=5, ppo_epochs=1)
    with pytest.raises(TrainingError, match="step 2") as info:
        train_ppo(policy, ref, flaky_reward, critic, tok, ["ab", "cd"], cfg)
    err = info.value
    assert "flaky_reward" in str(err) and "judge offline" in str(err)
    assert err.history["step"] == [0, 1] and len(err.history["kl"]) == 2


def test_train_ppo_gold_fn_with_the_wrong_length_states_the_contract():
    policy, ref, critic, tok = _tiny_models()
    cfg = RLHFConfig(total_batches=2, batch_size=4, max_new_tokens=5, ppo_epochs=1)
    with pytest.raises(TrainingError, match=r"gold_fn must return a torch.Tensor of shape \(4,\)"):
        train_ppo(policy, ref, _length_reward, critic, tok, ["ab"], cfg, gold_fn=lambda r: torch.zeros(3))


def test_train_ppo_ctrl_c_in_a_callback_returns_what_it_has():
    policy, ref, critic, tok = _tiny_models()
    seen = []

    def callback(step, history):
        seen.append(step)
        if step == 1:
            raise KeyboardInterrupt

    cfg = RLHFConfig(total_batches=5, batch_size=4, max_new_tokens=5, ppo_epochs=1)
    hist = train_ppo(policy, ref, _length_reward, critic, tok, ["ab"], cfg, callback=callback)
    assert seen == [0, 1] and hist["step"] == [0, 1]


def test_train_ppo_refuses_bad_arguments_before_training():
    policy, ref, critic, tok = _tiny_models()
    with pytest.raises(ValueError, match="prompt_pool"):
        train_ppo(policy, ref, _length_reward, critic, tok, "the food was")
    with pytest.raises(TypeError, match="cfg must be an RLHFConfig"):
        train_ppo(policy, ref, _length_reward, critic, tok, ["ab"], cfg={"kl_coef": 0.1})
    with pytest.raises(TypeError, match="callback"):
        train_ppo(policy, ref, _length_reward, critic, tok, ["ab"], callback=3)


def test_train_reward_model_failing_callback_keeps_the_history():
    from rlcourse.lm.model import RewardModel

    policy, _, _, tok = _tiny_models()
    rm = RewardModel(policy)
    pairs = [{"prompt": "x", "chosen": " good", "rejected": " bad"}] * 8

    def stop_at_two(step, history):
        if step == 2:
            raise ValueError("enough")

    with pytest.raises(TrainingError, match="stop_at_two") as info:
        train_reward_model(rm, tok, pairs, RewardModelConfig(epochs=2, batch_size=2), callback=stop_at_two)
    assert len(info.value.history["loss"]) == 3 and "seconds" in info.value.history
    with pytest.raises(ValueError, match="pair 1 is missing"):
        train_reward_model(rm, tok, [pairs[0], {"prompt": "x", "chosen": "y"}])


def test_reward_model_text_with_a_character_outside_the_vocabulary_is_refused():
    """An unknown character in a reward-model text is named, never silently read as <unk>."""
    from rlcourse.lm.model import load_model
    from rlcourse.reward_model.texts import encode_texts

    _, tok = load_model("reviews", device="cpu")
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        encode_texts(tok, ["a good film", "a good film ☃"], device="cpu")
