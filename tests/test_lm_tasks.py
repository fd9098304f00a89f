"""Tests for rlcourse.lm.tasks: the arithmetic task's reward and the review language's gold scorer."""

import numpy as np
import pytest
import torch

from rlcourse.lm.generate import Rollout
from rlcourse.lm.tasks import ADJECTIVES, ArithmeticTask, ReviewTask


def test_arithmetic_prompts_answers_and_disjoint_split():
    task = ArithmeticTask()
    assert task.prompt(23, 45) == "23+45=" and task.answer("23+45=") == "68"
    assert len(task.heldout_prompts) == 500 and len(task.train_prompts) == 100 * 100 - 500
    assert not set(task.heldout_prompts) & set(task.train_prompts)
    assert ArithmeticTask().heldout_prompts == task.heldout_prompts  # deterministic
    assert ArithmeticTask(seed=1).heldout_prompts != task.heldout_prompts
    with pytest.raises(ValueError, match="arithmetic prompt"):
        task.answer("hello")


def test_arithmetic_reward_is_correctness_plus_format():
    task = ArithmeticTask()
    assert task.score("23+45=", "68", finished=True) == pytest.approx(1.1)
    assert task.score("23+45=", "67", finished=True) == pytest.approx(0.1)
    assert task.score("23+45=", "6x", finished=True) == 0.0
    assert task.score("23+45=", "68", finished=False) == 0.0
    assert task.score("23+45=", "0068", finished=True) == 0.0


def test_arithmetic_sampling_is_seeded():
    task = ArithmeticTask()
    a = task.sample_prompts(20, np.random.default_rng(5))
    assert a == task.sample_prompts(20, 5)
    assert set(task.sample_prompts(50, 0, split="heldout")) <= set(task.heldout_prompts)


def test_rewards_of_a_rollout():
    task = ArithmeticTask()
    roll = Rollout(
        input_ids=torch.zeros(3, 2, dtype=torch.long),
        attention_mask=torch.ones(3, 2, dtype=torch.long),
        completion_mask=torch.zeros(3, 2, dtype=torch.long),
        prompt_index=torch.tensor([0, 0, 1]),
        finished=torch.tensor([True, True, False]),
        prompts=["1+2=", "5+5="],
        completions=["3", "4", "10"],
        texts=[],
        prompt_length=1,
        num_samples=2,
    )
    torch.testing.assert_close(task.rewards(roll), torch.tensor([1.1, 0.1, 0.0]))
    torch.testing.assert_close(task.correct(roll), torch.tensor([1.0, 0.0, 0.0]))


def test_review_grammar():
    t = ReviewTask()
    assert t.is_grammatical("the food was great .")
    assert t.is_grammatical("the food was not very good but the staff was rude .")
    assert not t.is_grammatical("the food was great")
    assert not t.is_grammatical("the food was very not good .")
    assert not t.is_grammatical("great great great .")
    assert not t.is_grammatical("the food was great . the room was nice .")
    reviews = t.sample_reviews(300, 0)
    assert all(t.is_grammatical(r) for r in reviews)
    assert reviews == t.sample_reviews(300, 0)
    assert all(r.startswith("the room was") for r in t.sample_reviews(20, 1, prefix="the room was"))


def test_gold_score_structure():
    t = ReviewTask()
    assert t.gold_score("the food was great .") == pytest.approx(np.tanh(ADJECTIVES["great"]))
    assert t.gold_score("the food was not great .") == pytest.approx(np.tanh(-0.5 * ADJECTIVES["great"]))
    assert t.gold_score("the food was very great .") > t.gold_score("the food was great .")
    assert t.gold_score("the food was awful .") < 0 < t.gold_score("the food was good .")
    assert t.gold_score("great great .") == -1.0
    # repeating a word is discounted, and long reviews pay a length penalty: a proxy that counts
    # positive words keeps rising where the gold score falls
    two = "the food was amazing and the room was amazing ."
    four = (
        "the food was amazing and the room was amazing and the view was amazing and the staff was amazing ."
    )
    assert t.gold_score(four) < t.gold_score(two)
    assert all(-1.0 <= t.gold_score(r) <= 1.0 for r in t.sample_reviews(200, 2))


def test_preference_pairs_are_seeded_and_mostly_agree_with_gold():
    t = ReviewTask()
    pairs = t.preference_pairs(400, seed=0)
    assert pairs == t.preference_pairs(400, seed=0)
    assert pairs != t.preference_pairs(400, seed=1)
    p = pairs[0]
    assert set(p) == {"prompt", "chosen", "rejected", "gold_chosen", "gold_rejected"}
    assert all(t.is_grammatical(q["prompt"] + q["chosen"]) for q in pairs)
    assert all(q["chosen"] != q["rejected"] for q in pairs)
    agree = np.mean([q["gold_chosen"] >= q["gold_rejected"] for q in pairs])
    assert 0.65 < agree < 0.98  # Bradley-Terry noise: mostly right, sometimes wrong
