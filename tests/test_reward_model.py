"""Tests for rlcourse.reward_model: Bradley-Terry loss against hand-computed values, toy recovery,
calibration, the LM reward-model trainer, and clear errors on bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlcourse.reward_model import (
    RewardModelConfig,
    bradley_terry_loss,
    calibration_curve,
    encode_texts,
    evaluate_pairs,
    expected_calibration_error,
    fit_bradley_terry,
    preference_accuracy,
    preference_probability,
    score_texts,
    simulate_preferences,
    train_reward_model,
)


# ----------------------------------------------------------------------------- the loss
def test_bt_loss_hand_computed_values():
    # log(1 + e^0) = log 2; log(1 + e^-2); log(1 + e^3): mean of the three
    chosen = torch.tensor([0.0, 2.0, -1.0])
    rejected = torch.tensor([0.0, 0.0, 2.0])
    expected = (math.log(2) + math.log(1 + math.exp(-2)) + math.log(1 + math.exp(3))) / 3
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)


def test_bt_loss_margin_is_subtracted_inside():
    chosen, rejected = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])
    margin = torch.tensor([1.0, 1.0])
    # differences minus margin: 0 and 2
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert bradley_terry_loss(chosen, rejected, margin=margin).item() == pytest.approx(expected, rel=1e-6)
    assert bradley_terry_loss(chosen, rejected, margin=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_bt_loss_centring_term_matches_trl_formula():
    chosen, rejected = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    base = -F.logsigmoid(chosen - rejected).mean()
    centre = 0.01 * ((chosen + rejected) ** 2).mean()  # TRL: c * mean((r_c + r_r)^2)
    got = bradley_terry_loss(chosen, rejected, center_coef=0.01)
    torch.testing.assert_close(got, base + centre)
    # hand value: (1.5^2 + 1^2)/2 = 1.625 -> 0.01625
    assert (got - base).item() == pytest.approx(0.01625, rel=1e-5)


def test_bt_loss_is_stable_for_huge_gaps_and_has_the_right_gradient():
    chosen = torch.tensor([-100.0, 0.0], requires_grad=True)
    rejected = torch.tensor([100.0, 0.0])
    loss = bradley_terry_loss(chosen, rejected)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx((200.0 + math.log(2)) / 2, rel=1e-5)
    loss.backward()
    # d/dc mean(-logsigmoid(c - r)) = -(1 - sigmoid(c - r)) / B
    torch.testing.assert_close(chosen.grad, torch.tensor([-0.5, -0.25]))


def test_bt_loss_only_differences_matter_without_centring():
    c, r = torch.randn(10), torch.randn(10)
    torch.testing.assert_close(bradley_terry_loss(c + 5, r + 5), bradley_terry_loss(c, r))
    assert bradley_terry_loss(c + 5, r + 5, center_coef=0.01) > bradley_terry_loss(c, r, center_coef=0.01)


def test_accuracy_counts_ties_as_wrong_and_probability():
    assert preference_accuracy(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])) == pytest.approx(
        1 / 3
    )
    p = preference_probability(torch.tensor([2.0]), torch.tensor([0.0]))
    assert p.item() == pytest.approx(1 / (1 + math.exp(-2)))


@pytest.mark.parametrize(
    "chosen, rejected, kwargs, match",
    [
        (torch.zeros(3), torch.zeros(4), {}, "same shape"),
        (torch.zeros(2, 3), torch.zeros(2, 3), {}, r"shape \(B,\)"),
        (torch.zeros(0), torch.zeros(0), {}, "empty batch"),
        (torch.zeros(3), torch.zeros(3), {"margin": torch.zeros(2)}, "margin"),
        (torch.zeros(3), torch.zeros(3), {"center_coef": -1.0}, "center_coef"),
        ([0.0], torch.zeros(1), {}, "torch.Tensor"),
    ],
)
def test_bt_loss_bad_inputs_raise_clear_errors(chosen, rejected, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bradley_terry_loss(chosen, rejected, **kwargs)


# ----------------------------------------------------------------------------- the toy
def test_simulated_preferences_follow_bradley_terry():
    rng = np.random.default_rng(0)
    u = np.array([0.0, 1.0])
    w, lo = simulate_preferences(u, 20000, rng)
    assert np.all(w != lo)
    share = np.mean(w == 1)
    assert share == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.015)


def test_fit_bradley_terry_recovers_known_utilities():
    u = np.array([-1.5, -0.5, 0.0, 0.7, 1.3])
    u = u - u.mean()
    w, lo = simulate_preferences(u, 4000, np.random.default_rng(1))
    fit = fit_bradley_terry(w, lo, len(u)).numpy()
    assert abs(fit.mean()) < 1e-6
    assert np.abs(fit - u).max() < 0.2
    assert list(np.argsort(fit)) == list(np.argsort(u))


def test_toy_bad_inputs():
    with pytest.raises(ValueError, match="at least 2 arms"):
        simulate_preferences([1.0], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        fit_bradley_terry(np.array([0, 5]), np.array([1, 2]), n_items=3)
    with pytest.raises(ValueError, match="equal length"):
        fit_bradley_terry(np.array([0, 1]), np.array([1]), n_items=3)


# ----------------------------------------------------------------------------- calibration
def test_calibration_of_a_calibrated_predictor_is_near_perfect():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    outcome = (rng.random(20000) < p).astype(float)
    curve = calibration_curve(p, outcome, n_bins=10)
    assert curve["count"].sum() == 20000
    assert expected_calibration_error(curve) < 0.02
    overconfident = np.clip(p * 2 - 0.5, 0, 1)
    assert expected_calibration_error(calibration_curve(overconfident, outcome)) > 0.1


def test_calibration_bad_inputs():
    with pytest.raises(ValueError, match="equal shape"):
        calibration_curve(np.array([0.5, 0.5]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_curve(np.array([1.5]), np.array([1.0]))


# ----------------------------------------------------------------------------- the LM reward model
def _tiny_rm(seed=0):
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import RewardModel, tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(seed)
    rm = RewardModel(GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2)))
    return rm, tok


def test_encode_texts_left_pads_and_appends_eos():
    _, tok = _tiny_rm()
    ids, mask = encode_texts(tok, ["ab", "abcd"])
    assert ids.shape == (2, 6)  # <bos> a b c d <eos>
    assert mask[0].tolist() == [0, 0, 1, 1, 1, 1]
    assert ids[0, -1].item() == tok.eos_token_id and ids[1, -1].item() == tok.eos_token_id
    assert ids[0, 2].item() == tok.bos_token_id
    with pytest.raises(ValueError, match="non-empty list"):
        encode_texts(tok, "ab")


def test_train_reward_model_learns_a_simple_preference():
    rm, tok = _tiny_rm()
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(96):
        n_good, n_bad = rng.integers(1, 3, size=2)
        pairs.append({"prompt": "x", "chosen": " good" * n_good, "rejected": " bad" * n_bad})
    hist = train_reward_model(
        rm, tok, pairs[:64], RewardModelConfig(epochs=6, batch_size=16, lr=3e-3), eval_pairs=pairs[64:]
    )
    assert len(hist["loss"]) == 6 * 4 and len(hist["eval_accuracy"]) == 6
    assert hist["eval_accuracy"][-1] == 1.0
    assert hist["loss"][-1] < 0.3 < math.log(2)
    ev = evaluate_pairs(rm, tok, pairs[64:])
    assert ev["accuracy"] == 1.0 and ev["margin"] > 0


def test_train_reward_model_bad_pairs():
    rm, tok = _tiny_rm()
    with pytest.raises(ValueError, match="no preference pairs"):
        train_reward_model(rm, tok, [])
    with pytest.raises(ValueError, match="missing"):
        train_reward_model(rm, tok, [{"prompt": "a", "chosen": "b"}])


# ----------------------------------------------------------------------------- the shipped reward model
def test_shipped_reward_model_loads_and_matches_its_manifest():
    from rlcourse.lm.model import verify_manifest
    from rlcourse.reward_model import load_reward_model, reward_model_dir, score_texts

    manifest = verify_manifest(reward_model_dir())
    assert manifest["heldout"]["accuracy"] > 0.65 and manifest["train_pairs"] > 0
    rm, tok = load_reward_model()
    assert not any(p.requires_grad for p in rm.parameters())
    s = score_texts(rm, tok, ["the food was amazing .", "the food was awful ."])
    assert s[0] > s[1]


def test_load_reward_model_errors(tmp_path):
    import shutil

    from rlcourse.reward_model import load_reward_model, reward_model_dir

    with pytest.raises(FileNotFoundError, match="python -m rlcourse.reward_model"):
        load_reward_model(tmp_path / "nope")
    bad = tmp_path / "rm"
    shutil.copytree(reward_model_dir(), bad)
    with open(bad / "head.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ValueError, match="corrupted"):
        load_reward_model(bad)


def test_score_texts_rejects_texts_longer_than_the_model():
    rm, tok = _tiny_rm()
    with pytest.raises(ValueError, match="positions"):
        score_texts(rm, tok, ["a" * 200])
