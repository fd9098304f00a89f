"""Tests for rlcourse.lm.sft: batches, the masked loss, the training loop and its determinism."""

import numpy as np
import pytest
import torch

from rlcourse.lm.logprobs import token_logprobs
from rlcourse.lm.model import init_model
from rlcourse.lm.sft import SFTConfig, lr_factor, sft_batch, sft_loss, train_sft
from rlcourse.lm.tasks import ArithmeticTask
from rlcourse.lm.tokenizer import build_tokenizer

TOK = build_tokenizer()
TASK = ArithmeticTask()


def small():
    return init_model(TOK, seed=0, n_embd=32, n_layer=1, n_head=2)


def sample_fn(rng, n):
    prompts = TASK.sample_prompts(n, rng)
    return prompts, [TASK.answer(p) for p in prompts]


def test_sft_batch_rows_and_masks():
    ids, att, comp = sft_batch(TOK, ["1+2=", "10+20="], ["3", "30"])
    assert ids.shape == att.shape == comp.shape == (2, 10)
    assert TOK.decode(ids[1]) == "<bos>10+20=30<eos>"
    assert comp[1].tolist() == [0] * 7 + [1, 1, 1]
    assert comp[0].tolist() == [0] * 8 + [1, 1]
    assert att[0].tolist() == [0, 0, 0] + [1] * 7
    with pytest.raises(ValueError, match="pair up"):
        sft_batch(TOK, ["1+2="], [])


def test_sft_loss_is_mean_nll_of_completion_tokens():
    model = small()
    ids, att, comp = sft_batch(TOK, ["1+2=", "10+20="], ["3", "30"])
    lp = token_logprobs(model, ids, att)
    want = -(lp * comp[:, 1:]).sum() / comp[:, 1:].sum()
    torch.testing.assert_close(sft_loss(model, ids, att, comp), want)


def test_lr_schedule():
    cfg = SFTConfig(warmup_steps=10, decay_steps=100, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0, abs=0.03)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    assert lr_factor(500, SFTConfig(warmup_steps=10)) == 1.0


def test_training_lowers_the_loss_and_is_deterministic():
    cfg = SFTConfig(max_steps=40, eval_every=10, batch_size=32, lr=3e-3)
    a, b = small(), small()
    hist = train_sft(a, TOK, sample_fn, cfg)
    train_sft(b, TOK, sample_fn, cfg)
    assert [h["step"] for h in hist] == [10, 20, 30, 40]
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"]
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_eval_and_stop_functions():
    cfg = SFTConfig(max_steps=50, eval_every=5, batch_size=8)
    calls = []

    def eval_fn():
        calls.append(1)
        return {"x": len(calls)}

    hist = train_sft(small(), TOK, sample_fn, cfg, eval_fn=eval_fn, stop_fn=lambda r: r["x"] >= 3)
    assert [h["step"] for h in hist] == [5, 10, 15] and hist[-1]["x"] == 3
    assert np.isfinite(hist[-1]["loss"])
