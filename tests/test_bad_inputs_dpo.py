"""Bad input to rlcourse.dpo gets a clear error naming the argument; a failing run keeps its history (issue 12)."""

from __future__ import annotations

import math

import pytest
import torch

from rlcourse.checks import TrainingError
from rlcourse.dpo import (
    DPOConfig,
    chosen_nll,
    closed_form_optimum,
    dpo_loss,
    pair_batch,
    pair_logps,
    train_dpo,
)

PAIRS = [
    {"prompt": "1+1=", "chosen": "2", "rejected": "3"},
    {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
]


@pytest.fixture
def tiny_model():
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    return GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=32)), tok


# ------------------------------------------------------------------------------------------ DPOConfig


@pytest.mark.parametrize(
    "field, value, exc, words",
    [
        ("beta", -0.1, ValueError, ["DPOConfig.beta", "-0.1", "> 0", "Fix"]),
        ("beta", 0.0, ValueError, ["DPOConfig.beta", "0.0", "> 0"]),
        ("beta", float("nan"), ValueError, ["DPOConfig.beta", "nan"]),
        ("beta", "0.1", TypeError, ["DPOConfig.beta", "'0.1'", "number"]),
        ("steps", 0, ValueError, ["DPOConfig.steps", ">= 1", "got 0"]),
        ("steps", 10.0, TypeError, ["DPOConfig.steps", "integer", "did you mean 10"]),
        ("batch_size", -4, ValueError, ["DPOConfig.batch_size", "-4"]),
        ("lr", 0.0, ValueError, ["DPOConfig.lr", "> 0"]),
        ("lr", float("inf"), ValueError, ["DPOConfig.lr", "inf"]),
        ("loss_type", "kto", ValueError, ["DPOConfig.loss_type", "'kto'", "'sigmoid'", "'ipo'", "'hinge'"]),
        ("nll_weight", -1.0, ValueError, ["DPOConfig.nll_weight", "-1.0", ">= 0"]),
        ("max_grad_norm", 0, ValueError, ["DPOConfig.max_grad_norm", "> 0"]),
        ("eval_every", -1, ValueError, ["DPOConfig.eval_every", "-1", "0 turns evaluation off"]),
        ("eval_samples", 0, ValueError, ["DPOConfig.eval_samples", ">= 1"]),
        ("max_new_tokens", 2.5, TypeError, ["DPOConfig.max_new_tokens", "integer", "2.5"]),
        ("temperature", 0.0, ValueError, ["DPOConfig.temperature", "> 0"]),
        ("seed", -3, ValueError, ["DPOConfig.seed", "-3"]),
        ("nll_weight", True, TypeError, ["DPOConfig.nll_weight", "True"]),
    ],
)
def test_config_refuses_bad_fields_when_built(field, value, exc, words):
    with pytest.raises(exc) as info:
        DPOConfig(**{field: value})
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_config_defaults_and_chapter_values_pass():
    DPOConfig()
    DPOConfig(steps=60, batch_size=16, lr=1e-4, beta=0.1, nll_weight=1.0, eval_every=0, loss_type="ipo")


# ------------------------------------------------------------------------------------------- dpo_loss


def _four(n=3):
    g = torch.Generator().manual_seed(0)
    return [-torch.rand(n, generator=g) * 10 for _ in range(4)]


NAMES = ["policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps"]


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_dpo_loss_refuses_non_finite_logps_naming_tensor_and_index(which, bad):
    xs = _four()
    xs[which][2] = bad
    with pytest.raises(ValueError) as info:
        dpo_loss(*xs)
    msg = str(info.value)
    assert NAMES[which] in msg and "index 2" in msg and str(bad) in msg


@pytest.mark.parametrize("beta", [-0.1, 0.0, float("nan")])
def test_dpo_loss_refuses_non_positive_beta(beta):
    with pytest.raises(ValueError, match=r"beta must be > 0.*Fix"):
        dpo_loss(*_four(), beta=beta)


def test_dpo_loss_refuses_integer_logps():
    xs = _four()
    xs[1] = torch.tensor([-3, -4, -5])
    with pytest.raises(TypeError, match="policy_rejected_logps must be a floating-point tensor"):
        dpo_loss(*xs)


def test_dpo_loss_refuses_unknown_loss_type_listing_the_choices():
    with pytest.raises(ValueError, match=r"loss_type must be one of 'sigmoid', 'ipo', 'hinge'; got 'dpo'"):
        dpo_loss(*_four(), loss_type="dpo")


def test_dpo_loss_ipo_refuses_bad_lengths():
    xs = _four()
    with pytest.raises(ValueError, match=r"chosen_lengths must be >= 1.*index 1"):
        dpo_loss(*xs, loss_type="ipo", chosen_lengths=torch.tensor([2, 0, 3]), rejected_lengths=torch.ones(3))
    with pytest.raises(ValueError, match=r"rejected_lengths must have shape \(3,\)"):
        dpo_loss(*xs, loss_type="ipo", chosen_lengths=torch.ones(3), rejected_lengths=torch.ones(2))
    with pytest.raises(ValueError, match="both chosen_lengths and rejected_lengths"):
        dpo_loss(*xs, loss_type="ipo", chosen_lengths=torch.ones(3))


def test_dpo_loss_refuses_a_non_tensor():
    xs = _four()
    xs[0] = [-1.0, -2.0, -3.0]
    with pytest.raises(TypeError, match="policy_chosen_logps must be a torch.Tensor"):
        dpo_loss(*xs)


# --------------------------------------------------------------------- chosen_nll, closed_form_optimum


def test_chosen_nll_refuses_nan_on_a_completion_token_and_ignores_it_on_padding():
    lp = torch.tensor([[float("nan"), -1.0, -2.0], [-3.0, -3.0, float("nan")]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    assert chosen_nll(lp, mask).item() == pytest.approx(9.0 / 4)  # the NaNs sit on padding
    mask[1, 2] = 1
    with pytest.raises(
        ValueError, match=r"per_token_logps contains a non-finite value \(nan\) at index \(1, 2\)"
    ):
        chosen_nll(lp, mask)


def test_closed_form_optimum_refuses_bad_inputs():
    ref, r = torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])
    with pytest.raises(ValueError, match="beta must be > 0"):
        closed_form_optimum(ref, r, beta=-1.0)
    with pytest.raises(ValueError, match=r"ref_probs must be >= 0.*-0.5 at index \(0,\)"):
        closed_form_optimum(torch.tensor([-0.5, 1.5]), r, beta=1.0)
    with pytest.raises(ValueError, match="rewards contains a non-finite value"):
        closed_form_optimum(ref, torch.tensor([0.0, float("nan")]), beta=1.0)


# ------------------------------------------------------------------------------- pairs and log-probs


@pytest.mark.parametrize(
    "pairs, exc, words",
    [
        ([], ValueError, ["no preference pairs"]),
        ("1+1=", TypeError, ["pairs must be a list", "str"]),
        ([("1+1=", "2", "3")], TypeError, ["pairs[0] must be a dict", "tuple"]),
        ([PAIRS[0], {"prompt": "a", "chosen": "b"}], ValueError, ["pairs[1] is missing ['rejected']"]),
        (
            [{"prompt": "a", "chosen": 2, "rejected": "b"}],
            TypeError,
            ["pairs[0]['chosen'] must be a string", "int"],
        ),
    ],
)
def test_pair_batch_refuses_bad_pairs(tiny_model, pairs, exc, words):
    _, tok = tiny_model
    with pytest.raises(exc) as info:
        pair_batch(tok, pairs)
    for w in words:
        assert w in str(info.value)


def test_pair_logps_are_exactly_zero_off_the_completion(tiny_model):
    model, tok = tiny_model
    ids, attn, comp = pair_batch(tok, PAIRS)
    per_token, summed = pair_logps(model, ids, attn, comp)
    off = ~comp[:, 1:].bool()
    assert (per_token[off] == 0).all()
    torch.testing.assert_close(summed, per_token.sum(-1))


# ----------------------------------------------------------------------------------------- train_dpo


def test_train_dpo_refuses_bad_arguments(tiny_model):
    model, tok = tiny_model
    with pytest.raises(TypeError, match="cfg must be a rlcourse.dpo.DPOConfig, got dict"):
        train_dpo(model, tok, PAIRS, {"steps": 3})
    with pytest.raises(TypeError, match=r"callback must be a function callback\(step, history\)"):
        train_dpo(model, tok, PAIRS, DPOConfig(steps=1, eval_every=0), callback="print")
    with pytest.raises(ValueError, match="eval_prompts must be a non-empty list"):
        train_dpo(model, tok, PAIRS, DPOConfig(steps=1), task=object(), eval_prompts="the food was")


def test_failing_callback_keeps_the_completed_history(tiny_model):
    model, tok = tiny_model
    seen = []

    def callback(step, history):
        seen.append((step, len(history["loss"])))
        if step == 3:
            raise RuntimeError("disk full")

    cfg = DPOConfig(steps=10, batch_size=2, lr=1e-3, eval_every=0)
    with pytest.raises(TrainingError) as info:
        train_dpo(model, tok, PAIRS, cfg, callback=callback)
    err = info.value
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert err.trainer == "train_dpo" and err.step == 3
    assert len(err.history["loss"]) == 3 and err.history["step"] == [1, 2, 3]
    assert "train_dpo stopped at step 3" in str(err) and "callback" in str(err) and "disk full" in str(err)
    assert math.isclose(err.history["dpo_loss"][0], math.log(2), abs_tol=1e-4)


def test_keyboard_interrupt_returns_the_completed_steps(tiny_model, capsys):
    model, tok = tiny_model

    def callback(step, history):
        if step == 2:
            raise KeyboardInterrupt

    hist = train_dpo(model, tok, PAIRS, DPOConfig(steps=10, batch_size=2, eval_every=0), callback=callback)
    assert hist["step"] == [1, 2]
    assert "interrupted at step 2" in capsys.readouterr().out


def test_nan_in_the_model_mid_run_is_a_training_error_with_history(tiny_model):
    model, tok = tiny_model

    def poison(step, history):
        if step == 2:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError) as info:
        train_dpo(model, tok, PAIRS, DPOConfig(steps=5, batch_size=2, eval_every=0), callback=poison)
    assert info.value.history["step"] == [1, 2]
    assert "non-finite" in str(info.value) and "at index" in str(info.value)
