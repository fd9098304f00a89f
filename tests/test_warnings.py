"""No warning from rlcourse code: every warning raised while rlcourse runs is an error here (issue 12).

Chapters 05, 06 and 10 once printed transformers' ``FutureWarning`` about ``past_key_values`` (removed in
transformers 5.40) from :func:`rlcourse.lm.generate.generate`. Each test runs a small step of one part of
the package under ``warnings.simplefilter("error")`` and also fails on a transformers log message that
says "deprecated" (transformers reports some deprecations through its logger, once per process, so the
once-cache is cleared first).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from rlcourse.lm.generate import generate
from rlcourse.lm.logprobs import masked_mean, sequence_logprobs, shift_mask, token_logprobs
from rlcourse.lm.model import RewardModel, ValueHeadModel, frozen_copy, load_model, tiny_gpt2_config
from rlcourse.lm.tokenizer import build_tokenizer

TOK = build_tokenizer()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def no_warnings():
    """Turn every Python warning into an error; fail on a transformers log line about a deprecation."""
    logging.Logger.warning_once.cache_clear()  # transformers' warning_once: make a repeat visible again
    records = _Records()
    hf_logger = hf_logging.get_logger("transformers")
    hf_logger.addHandler(records)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
    finally:
        hf_logger.removeHandler(records)
    bad = [m for m in records.messages if "deprecat" in m.lower() or "will be removed" in m.lower()]
    assert not bad, f"transformers logged a deprecation while rlcourse ran: {bad}"


def tiny_lm(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_gpt2_config(len(TOK), n_embd=32, n_layer=1, n_head=2, n_positions=32)).eval()


def test_the_guard_itself_catches_a_warning():
    with pytest.raises(UserWarning), no_warnings():
        warnings.warn("a warning", UserWarning, stacklevel=1)


def test_the_guard_catches_the_old_cache_argument():
    """The call rlcourse used to make: passing ``past_key_values=`` warns on transformers 5.24+."""
    model = tiny_lm()
    ids = torch.tensor([TOK("1+1=")["input_ids"]])
    out = model(input_ids=ids, use_cache=True)
    cache = out["cache"] if "cache" in out.keys() else None
    if cache is None:
        pytest.skip("this transformers still calls the cache past_key_values")
    with pytest.raises((FutureWarning, AssertionError)), no_warnings():
        model(input_ids=ids[:, -1:], past_key_values=cache, use_cache=True)


@pytest.mark.parametrize("num_samples,temperature", [(1, 0.0), (3, 1.0)])
def test_generate_raises_no_warning(num_samples, temperature):
    model = tiny_lm()
    with no_warnings():
        roll = generate(
            model,
            TOK,
            ["1+1=", "23+45="],
            max_new_tokens=6,
            temperature=temperature,
            top_k=5 if temperature else None,
            num_samples=num_samples,
            generator=torch.Generator().manual_seed(0),
        )
    assert len(roll) == 2 * num_samples


def test_shipped_model_loads_and_generates_without_warning():
    with no_warnings():
        model, tok = load_model("arithmetic")
        roll = generate(model, tok, ["12+30="], max_new_tokens=4, num_samples=2)
    assert len(roll) == 2


def test_logprobs_and_heads_raise_no_warning(tmp_path):
    model = tiny_lm()
    roll = generate(
        model, TOK, ["1+2=", "3+4="], max_new_tokens=3, generator=torch.Generator().manual_seed(1)
    )
    with no_warnings():
        logp = token_logprobs(model, roll.input_ids, roll.attention_mask)
        seq = sequence_logprobs(model, roll.input_ids, roll.attention_mask, roll.completion_mask)
        masked_mean(logp, shift_mask(roll.completion_mask))
        ValueHeadModel(frozen_copy(model))(roll.input_ids, roll.attention_mask)
        rm = RewardModel(tiny_lm(1))
        rm.save_pretrained(tmp_path / "rm", TOK, note="test")
        RewardModel.from_pretrained(tmp_path / "rm")(roll.input_ids, roll.attention_mask)
    assert seq.shape == (2,)


def test_sft_raises_no_warning():
    from rlcourse.lm.sft import SFTConfig, train_sft

    def sample(rng, n):
        a = rng.integers(0, 10, n)
        return [f"{x}+1=" for x in a], [str(x + 1) for x in a]

    with no_warnings():
        hist = train_sft(tiny_lm(), TOK, sample, SFTConfig(max_steps=2, batch_size=4, eval_every=1))
    assert [h["step"] for h in hist] == [1, 2]


class _StartsWithSeven:
    """Reward 1 when the completion starts with '7' (a task any tiny model can learn)."""

    pool = [f"{a}+{b}=" for a in range(10) for b in range(10)]

    def sample_prompts(self, n, rng):
        return [self.pool[i] for i in rng.integers(0, len(self.pool), n)]

    def rewards(self, rollout):
        return torch.tensor([float(c.startswith("7")) for c in rollout.completions])

    def accuracy(self, model, tokenizer, prompts):
        roll = generate(model, tokenizer, prompts, max_new_tokens=2, temperature=0.0)
        return self.rewards(roll).mean().item()


def test_grpo_step_raises_no_warning():
    from rlcourse.grpo import GRPOConfig, train_grpo

    cfg = GRPOConfig(steps=1, prompts_per_step=2, group_size=2, max_new_tokens=3, eval_every=0)
    with no_warnings():
        hist = train_grpo(tiny_lm(), TOK, _StartsWithSeven(), cfg)
    assert len(hist["step"]) == 1


def test_dpo_step_raises_no_warning():
    from rlcourse.dpo import DPOConfig, train_dpo

    pairs = [
        {"prompt": "1+1=", "chosen": "2", "rejected": "3"},
        {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
    ]
    with no_warnings():
        hist = train_dpo(tiny_lm(), TOK, pairs, DPOConfig(steps=1, batch_size=2, eval_every=0))
    assert len(hist["time"]) == 1


def test_reward_model_training_raises_no_warning():
    from rlcourse.reward_model import RewardModelConfig, train_reward_model

    rng = np.random.default_rng(0)
    pairs = [
        {
            "prompt": "x",
            "chosen": " good" * int(rng.integers(1, 3)),
            "rejected": " bad" * int(rng.integers(1, 3)),
        }
        for _ in range(8)
    ]
    with no_warnings():
        hist = train_reward_model(
            RewardModel(tiny_lm()), TOK, pairs, RewardModelConfig(epochs=1, batch_size=4)
        )
    assert len(hist["loss"]) == 2


def test_rlhf_ppo_step_raises_no_warning():
    from rlcourse.rlhf import RLHFConfig, make_critic, train_ppo

    policy = tiny_lm()
    cfg = RLHFConfig(total_batches=1, batch_size=4, max_new_tokens=4, seed=0)
    with no_warnings():
        hist = train_ppo(
            policy,
            frozen_copy(policy),
            RewardModel(tiny_lm(1)),
            make_critic(policy),
            TOK,
            ["1+1=", "2+2="],
            cfg,
        )
    assert len(hist["kl"]) == 1
