"""rlcourse.comparison (chapter 10) and its exercise checkers."""

import math

import pytest
import torch

from rlcourse.comparison import (
    evaluate_policy,
    finished_within,
    pareto_front,
    seeds_agree,
    spread,
    state_bytes,
    time_to_target,
)
from rlcourse.exercises import ch10


def test_state_bytes_counts_adam_copies():
    assert state_bytes([10], [5]) == 4 * (4 * 10 + 5)
    assert state_bytes([10], [5], bytes_per_param=2) == 2 * 45
    assert state_bytes([], []) == 0


def test_state_bytes_matches_grpo_state_memory():
    from rlcourse.grpo import state_memory_mb

    a, b = torch.nn.Linear(3, 4), torch.nn.Linear(5, 2)
    n = [sum(p.numel() for p in m.parameters()) for m in (a, b)]
    assert state_bytes([n[0]], [n[1]]) / 2**20 == pytest.approx(state_memory_mb([a], [b]))


@pytest.mark.parametrize("bad", [([-1], []), ([1.5], []), ([1], ["x"])])
def test_state_bytes_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="non-negative integers"):
        state_bytes(*bad)


def test_time_to_target():
    assert time_to_target([1, 2, 3], [0, 1, 0], 0.5) == 2
    assert time_to_target([1, 2, 3], [0, 0, 0], 0.5) == math.inf
    with pytest.raises(ValueError, match="equal length"):
        time_to_target([1, 2], [0], 0.0)


def test_pareto_front():
    assert pareto_front([0.5, 1.0, 2.0, 3.0, 1.5], [0.1, 0.4, 0.3, 0.6, 0.5]) == [0, 1, 4, 3]
    assert pareto_front([1.0, 1.0], [0.2, 0.5]) == [1]
    with pytest.raises(ValueError, match="equal length"):
        pareto_front([1.0], [1.0, 2.0])


def test_spread_and_seeds_agree():
    assert spread([1.0, 3.0, 2.0]) == (2.0, 1.0, 3.0)
    assert seeds_agree([0.5, 0.6, 0.7], [0.1, 0.2, 0.3], margin=0.1) == 1
    assert seeds_agree([0.1, 0.2], [0.5, 0.6], margin=0.1) == -1
    assert seeds_agree([0.5, 0.1], [0.3, 0.3], margin=0.0) == 0  # seeds disagree
    assert seeds_agree([0.35, 0.6], [0.3, 0.3], margin=0.1) == 0  # one seed within the margin
    assert seeds_agree([math.inf, 9.0], [3.0, 4.0], margin=0.0) == 1  # inf: never reached the target
    assert seeds_agree([math.inf, 9.0], [math.inf, 4.0], margin=0.0) == 0
    with pytest.raises(ValueError, match="one value per seed"):
        seeds_agree([1.0], [1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="margin"):
        seeds_agree([1.0], [1.0], -0.1)
    with pytest.raises(ValueError, match="one entry per seed"):
        spread([])


def test_finished_within():
    lengths, finished = [3, 5, 8, 8], [True, True, True, False]
    assert finished_within([2, 3, 5, 8], lengths, finished) == [0.0, 0.25, 0.5, 0.75]
    assert finished_within([4], torch.tensor(lengths), torch.tensor(finished)) == [0.25]
    with pytest.raises(ValueError, match="equal length"):
        finished_within([4], [1, 2], [True])
    with pytest.raises(ValueError, match="positive integers"):
        finished_within([0], lengths, finished)


@pytest.fixture
def tiny_lm():
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=48))
    return model.eval(), tok


class LengthTask:
    """A stand-in for ReviewTask: gold = the text's length in characters."""

    def gold_score(self, text):
        return float(len(text))

    def is_grammatical(self, text):
        return text.endswith(".")


def test_finished_within_matches_a_shorter_limit(tiny_lm):
    """One batch at a long limit gives the finish rate of every shorter limit (same random draws)."""
    from rlcourse.lm.generate import generate

    model, tok = tiny_lm
    prompts = ["1+1="] * 64
    long = generate(model, tok, prompts, 30, 1.0, generator=torch.Generator().manual_seed(3))
    short = generate(model, tok, prompts, 6, 1.0, generator=torch.Generator().manual_seed(3))
    rate = finished_within([6], long.completion_lengths, long.finished)[0]
    assert 0 < rate < 1  # the test means something: some samples end within 6 tokens, some do not
    assert rate == short.finished.float().mean().item()


def test_evaluate_policy(tiny_lm):
    model, tok = tiny_lm
    prompts = ["1+1=", "2+2="] * 16
    r = evaluate_policy(model, model, tok, prompts, LengthTask(), 12, 1.0, torch.Generator().manual_seed(0))
    assert r["kl"] == 0.0  # the policy against itself
    assert len(r["texts"]) == 32 and 0 < r["finished"] < 1
    again = evaluate_policy(
        model, model, tok, prompts, LengthTask(), 12, 1.0, torch.Generator().manual_seed(0)
    )
    assert again["texts"] == r["texts"] and again["gold"] == r["gold"]
    # the same draws again: gold on the finished samples is the mean over exactly those rows
    from rlcourse.lm.generate import generate

    roll = generate(model, tok, prompts, 12, 1.0, generator=torch.Generator().manual_seed(0))
    assert roll.texts == r["texts"]
    gold = [LengthTask().gold_score(t) for t in roll.texts]
    fin = roll.finished.tolist()
    assert r["gold_finished"] == pytest.approx(sum(g for g, f in zip(gold, fin, strict=True) if f) / sum(fin))
    assert r["gold"] == pytest.approx(sum(gold) / len(gold))
    with pytest.raises(ValueError, match="max_new_tokens"):
        evaluate_policy(model, model, tok, prompts, LengthTask(), 0)
    with pytest.raises(ValueError, match="prompts is empty"):
        evaluate_policy(model, model, tok, [], LengthTask(), 5)


@pytest.mark.parametrize(
    "checker, right, wrong",
    [
        (
            ch10.check_state_bytes,
            state_bytes,
            lambda t, f, bytes_per_param=4: bytes_per_param * (sum(t) + sum(f)),
        ),
        (ch10.check_time_to_target, time_to_target, lambda t, v, target: t[-1] if t else math.inf),
        (ch10.check_pareto_front, pareto_front, lambda kl, gold: sorted(range(len(kl)), key=lambda i: kl[i])),
    ],
)
def test_checkers(checker, right, wrong, monkeypatch):
    monkeypatch.delenv("RLCOURSE_STRICT_CHECKS", raising=False)
    assert checker(right)
    res = checker(wrong)
    assert res.status == "failed" and "case" in res.message and "expected" in res.message

    def blank(*a, **k):
        raise NotImplementedError()

    assert checker(blank).status == "not done"


def test_zero_state_bytes_follows_the_zero_paper():
    from rlcourse.comparison import zero_state_bytes

    n = 7_500_000_000  # the ZeRO paper's 7.5B example on 64 GPUs: 120, 31.4, 16.6, 1.9 GB
    got = [zero_state_bytes(n, 64, s) / 1e9 for s in range(4)]
    assert got == pytest.approx([120, 31.4, 16.6, 1.875], abs=0.05)
    assert zero_state_bytes(1000, 1, 3) == zero_state_bytes(1000, 1, 0) == 16_000


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n_params": -1}, "n_params"),
        ({"n_params": 10, "n_gpus": 0}, "n_gpus"),
        ({"n_params": 10, "stage": 4}, "stage"),
    ],
)
def test_zero_state_bytes_rejects_bad_input(kwargs, words):
    from rlcourse.comparison import zero_state_bytes

    with pytest.raises(ValueError, match=words):
        zero_state_bytes(**kwargs)
