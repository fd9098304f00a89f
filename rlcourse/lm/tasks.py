"""The two tasks of the LM track, deterministic and seeded (chapter 05; used in chapters 06-10).

**Arithmetic** (a checkable answer, for REINFORCE and GRPO's rule-based reward, as in DeepSeek-R1):
the prompt ``"23+45="`` asks for the completion ``"68"`` followed by ``<eos>``. Operands are 0..99.

Reward of one completion (exactly; ``completion`` is the generated text before ``<eos>``)::

    correctness = 1.0  if the completion ended with <eos> and its text == str(a + b)     else 0.0
    format      = 0.1  if the completion ended with <eos> and its text is 1-3 digits     else 0.0
    reward      = correctness + format      -> one of 0.0, 0.1, 1.1

**Reviews** (a hidden gold scorer, for the reward model, RLHF-PPO and DPO): a tiny review language::

    review := clause ((" and " | " but ") clause)* " ."
    clause := "the " ASPECT " was" [" not"] [" " INTENSIFIER] " " ADJECTIVE

e.g. ``"the food was very good but the service was not great ."``. Each adjective has a hidden sentiment
weight (``ADJECTIVES``), an intensifier multiplies it (``INTENSIFIERS``), ``not`` multiplies by -0.5. The
gold score (:meth:`ReviewTask.gold_score`) is built so a learned proxy can be over-optimised:

- repetition is discounted: the k-th use of the same adjective counts ``0.5 ** (k - 1)``;
- the sum saturates: ``tanh(sum)``;
- length costs: ``-0.3`` per clause beyond the second;
- ungrammatical text scores ``-1`` (a reader who cannot parse a review does not like it).

The intent: a reward model trained on pairs of short grammatical reviews can learn "more positive words is
better" and keep rewarding long, repetitive or broken text that the gold scorer punishes -- a measurable
over-optimisation of a learned proxy (chapters 06-07 measure it).

Public API
----------
- ``ArithmeticTask(seed=0, n_heldout=500)``: ``.prompt(a, b)``, ``.answer(prompt)``, ``.train_prompts``,
  ``.heldout_prompts`` (disjoint; the shipped model's SFT stopped on them, so they are a validation set),
  ``.unseen_by_sft(steps, batch_size, seed)`` (a test set), ``.sample_prompts(n, rng)``,
  ``.score(prompt, completion, finished)``,
  ``.rewards(rollout) -> (B,)``, ``.accuracy(model, tokenizer, prompts, greedy=True) -> float``.
- ``ReviewTask()``: ``.is_grammatical(text)``, ``.gold_score(text)``, ``.sample_reviews(n, rng, prefix=None)``,
  ``.prompts(n, seed)`` (prefixes such as ``"the food was"``), ``.preference_pairs(n, seed)`` (dicts with
  ``prompt, chosen, rejected, gold_chosen, gold_rejected``), ``.rewards(rollout) -> (B,)`` (gold score of
  prompt + completion), ``.grammatical_rate(texts)``.
- ``sentiment_weight(adjective)``, ``ASPECTS``, ``ADJECTIVES``, ``INTENSIFIERS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch

# ------------------------------------------------------------------------------------------ arithmetic

CORRECT_REWARD = 1.0
FORMAT_REWARD = 0.1


class ArithmeticTask:
    """Two-operand addition ``"a+b="`` with a, b in 0..``max_operand``; a seeded, disjoint held-out split."""

    def __init__(self, seed: int = 0, n_heldout: int = 500, max_operand: int = 99):
        n_all = (max_operand + 1) ** 2
        if not 0 < n_heldout < n_all:
            raise ValueError(f"n_heldout must be between 1 and {n_all - 1}, got {n_heldout}")
        self.max_operand = max_operand
        pairs = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
        order = np.random.default_rng(seed).permutation(len(pairs))
        held = sorted(int(i) for i in order[:n_heldout])
        train = sorted(int(i) for i in order[n_heldout:])
        self.heldout_prompts: list[str] = [self.prompt(*pairs[i]) for i in held]
        self.train_prompts: list[str] = [self.prompt(*pairs[i]) for i in train]

    @staticmethod
    def prompt(a: int, b: int) -> str:
        """``prompt(23, 45) == "23+45="``."""
        return f"{a}+{b}="

    @staticmethod
    def answer(prompt: str) -> str:
        """The correct completion text (without ``<eos>``): ``answer("23+45=") == "68"``."""
        m = re.fullmatch(r"(\d+)\+(\d+)=", prompt)
        if m is None:
            raise ValueError(f"{prompt!r} is not an arithmetic prompt like '23+45='")
        return str(int(m.group(1)) + int(m.group(2)))

    def sample_prompts(self, n: int, rng: np.random.Generator | int, split: str = "train") -> list[str]:
        """``n`` prompts drawn with replacement from the ``"train"`` or ``"heldout"`` split."""
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        pool = self.train_prompts if split == "train" else self.heldout_prompts
        return [pool[i] for i in rng.integers(0, len(pool), size=n)]

    def unseen_by_sft(self, steps: int, batch_size: int, seed: int) -> list[str]:
        """Train prompts that an SFT run on this task never drew: a *test* set for the shipped model.

        ``rlcourse.lm.sft.build_arithmetic`` draws ``batch_size`` train prompts per step with
        :meth:`sample_prompts` from ``np.random.default_rng(seed)``; replaying those ``steps`` draws tells
        which train prompts the model never saw. They are disjoint from ``heldout_prompts`` too, which
        chose the SFT stopping step (a validation set), so accuracy on them is an unbiased test of the
        shipped model (chapter 05). Pass the values in the model's manifest (``sft_config["seed"]``,
        ``sft_config["batch_size"]``, ``metrics["steps"]``).

        Returns:
            the unseen train prompts, in the order of ``train_prompts``.
        """
        from rlcourse.checks import check_int

        check_int("steps", steps, low=0)
        check_int("batch_size", batch_size, low=1)
        check_int("seed", seed, low=0)
        rng = np.random.default_rng(seed)
        seen = np.zeros(len(self.train_prompts), dtype=bool)
        for _ in range(steps):
            seen[rng.integers(0, len(self.train_prompts), size=batch_size)] = True
        return [p for p, s in zip(self.train_prompts, seen, strict=True) if not s]

    def score(self, prompt: str, completion: str, finished: bool) -> float:
        """Rule-based reward (see the module docstring): 1.0 correct + 0.1 format, both need ``<eos>``."""
        if not finished:
            return 0.0
        correct = CORRECT_REWARD if completion == self.answer(prompt) else 0.0
        fmt = FORMAT_REWARD if re.fullmatch(r"\d{1,3}", completion) else 0.0
        return correct + fmt

    def rewards(self, rollout) -> torch.Tensor:
        """Reward of every row of a :class:`rlcourse.lm.generate.Rollout`, ``(B,)`` float on its device."""
        vals = [
            self.score(p, c, bool(f))
            for p, c, f in zip(
                rollout.row_prompts, rollout.completions, rollout.finished.tolist(), strict=True
            )
        ]
        return torch.tensor(vals, dtype=torch.float32, device=rollout.input_ids.device)

    def correct(self, rollout) -> torch.Tensor:
        """1.0 where the row's answer is correct (ignoring the format bonus), ``(B,)``."""
        return (self.rewards(rollout) >= CORRECT_REWARD).float()

    def accuracy(
        self,
        model,
        tokenizer,
        prompts: Sequence[str],
        greedy: bool = True,
        batch_size: int = 500,
        generator: torch.Generator | None = None,
    ) -> float:
        """Fraction of ``prompts`` answered correctly (greedy decoding by default; temperature 1 otherwise)."""
        from rlcourse.lm.generate import generate

        if len(prompts) == 0:
            raise ValueError("accuracy needs at least one prompt")
        hits = 0.0
        for i in range(0, len(prompts), batch_size):
            roll = generate(
                model,
                tokenizer,
                list(prompts[i : i + batch_size]),
                max_new_tokens=5,
                temperature=0.0 if greedy else 1.0,
                generator=generator,
            )
            hits += self.correct(roll).sum().item()
        return hits / len(prompts)


# ------------------------------------------------------------------------------------------ reviews

ASPECTS = ("food", "service", "staff", "room", "music", "view", "coffee", "price")
ADJECTIVES = {
    "amazing": 1.0,
    "great": 0.8,
    "good": 0.5,
    "nice": 0.4,
    "fine": 0.1,
    "okay": 0.0,
    "cold": -0.3,
    "bland": -0.4,
    "slow": -0.5,
    "bad": -0.6,
    "rude": -0.8,
    "awful": -1.0,
}
INTENSIFIERS = {"very": 1.5, "really": 1.4, "quite": 1.2, "slightly": 0.5}
NEGATION = -0.5
REPEAT_DISCOUNT = 0.5
LENGTH_PENALTY = 0.3
FREE_CLAUSES = 2
UNGRAMMATICAL_SCORE = -1.0

_CLAUSE = (
    rf"the (?P<aspect>{'|'.join(ASPECTS)}) was(?P<neg> not)?(?: (?P<intens>{'|'.join(INTENSIFIERS)}))?"
    rf" (?P<adj>{'|'.join(ADJECTIVES)})"
)
_CLAUSE_RE = re.compile(_CLAUSE)


def sentiment_weight(adjective: str) -> float:
    """The hidden weight of one adjective (``ADJECTIVES``)."""
    if adjective not in ADJECTIVES:
        raise ValueError(f"{adjective!r} is not an adjective of the review language: {sorted(ADJECTIVES)}")
    return ADJECTIVES[adjective]


class ReviewTask:
    """The tiny review language, its grammaticality check and its hidden gold sentiment scorer."""

    clause_probs = (0.55, 0.35, 0.10)  # P(1, 2, 3 clauses) when sampling

    # -- grammar ----------------------------------------------------------------------------------
    @staticmethod
    def split_clauses(text: str) -> list[re.Match] | None:
        """The clauses of a grammatical review as regex matches, or None if ``text`` is not grammatical."""
        text = text.strip()
        if not text.endswith(" .") or text.count(".") != 1:
            return None
        body = text[:-2]
        parts = re.split(r" (?:and|but) ", body)
        matches = [_CLAUSE_RE.fullmatch(p) for p in parts]
        if any(m is None for m in matches):
            return None
        return matches

    def is_grammatical(self, text: str) -> bool:
        """True when ``text`` (a whole review, outer whitespace ignored) follows the grammar exactly."""
        return self.split_clauses(text) is not None

    def grammatical_rate(self, texts: Sequence[str]) -> float:
        """Fraction of ``texts`` that are grammatical."""
        if len(texts) == 0:
            raise ValueError("grammatical_rate needs at least one text")
        return sum(self.is_grammatical(t) for t in texts) / len(texts)

    # -- gold scorer ------------------------------------------------------------------------------
    def gold_score(self, text: str) -> float:
        """Hidden gold sentiment in [-1, 1] (see the module docstring for the exact formula)."""
        clauses = self.split_clauses(text)
        if clauses is None:
            return UNGRAMMATICAL_SCORE
        seen: dict[str, int] = {}
        total = 0.0
        for m in clauses:
            adj = m.group("adj")
            v = ADJECTIVES[adj]
            if m.group("intens"):
                v *= INTENSIFIERS[m.group("intens")]
            if m.group("neg"):
                v *= NEGATION
            seen[adj] = seen.get(adj, 0) + 1
            total += v * REPEAT_DISCOUNT ** (seen[adj] - 1)
        score = math.tanh(total) - LENGTH_PENALTY * max(0, len(clauses) - FREE_CLAUSES)
        return float(min(1.0, max(-1.0, score)))

    # -- sampling ---------------------------------------------------------------------------------
    def _clause(self, rng: np.random.Generator, aspect: str | None = None) -> str:
        aspect = aspect or ASPECTS[rng.integers(len(ASPECTS))]
        words = ["the", aspect, "was"]
        if rng.random() < 0.2:
            words.append("not")
        if rng.random() < 0.35:
            words.append(list(INTENSIFIERS)[rng.integers(len(INTENSIFIERS))])
        words.append(list(ADJECTIVES)[rng.integers(len(ADJECTIVES))])
        return " ".join(words)

    def sample_reviews(self, n: int, rng: np.random.Generator | int, prefix: str | None = None) -> list[str]:
        """``n`` grammatical reviews; adjectives uniform, so sentiment is neutral on average.

        With ``prefix`` (a prompt such as ``"the food was"``) every review starts with that clause's aspect,
        i.e. ``review.startswith(prefix)`` holds.
        """
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        aspect = None
        if prefix is not None:
            m = re.fullmatch(rf"the ({'|'.join(ASPECTS)}) was", prefix.strip())
            if m is None:
                raise ValueError(
                    f"prefix must look like 'the food was' with an aspect from {ASPECTS}, got {prefix!r}"
                )
            aspect = m.group(1)
        out = []
        for _ in range(n):
            k = 1 + int(rng.choice(len(self.clause_probs), p=self.clause_probs))
            clauses = [self._clause(rng, aspect)] + [self._clause(rng) for _ in range(k - 1)]
            text = clauses[0]
            for c in clauses[1:]:
                text += (" and " if rng.random() < 0.5 else " but ") + c
            out.append(text + " .")
        return out

    @staticmethod
    def prompts(n: int, seed: int = 0) -> list[str]:
        """``n`` prompts (prefixes such as ``"the food was"``), seeded."""
        rng = np.random.default_rng(seed)
        return [f"the {ASPECTS[i]} was" for i in rng.integers(0, len(ASPECTS), size=n)]

    def preference_pairs(self, n: int, seed: int = 0, bt_scale: float = 4.0) -> list[dict]:
        """``n`` preference pairs for shared prompts, labelled by the gold scorer with Bradley-Terry noise.

        For each prompt two completions are sampled from the grammar; the first is labelled ``chosen`` with
        probability ``sigmoid(bt_scale * (gold_a - gold_b))`` (so close calls are noisy, as human labels
        are). Completions start with a space: ``prompt + chosen`` is a whole review.

        Returns:
            a list of dicts with keys ``prompt, chosen, rejected, gold_chosen, gold_rejected`` (the format of
            TRL's preference datasets, plus the hidden gold scores for evaluation).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        pairs = []
        for prompt in self.prompts(n, seed=int(rng.integers(2**31))):
            a, b = self.sample_reviews(2, rng, prefix=prompt)
            while b == a:
                b = self.sample_reviews(1, rng, prefix=prompt)[0]
            ga, gb = self.gold_score(a), self.gold_score(b)
            p_a = 1.0 / (1.0 + math.exp(-bt_scale * (ga - gb)))
            if rng.random() >= p_a:
                a, b, ga, gb = b, a, gb, ga
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": a[len(prompt) :],
                    "rejected": b[len(prompt) :],
                    "gold_chosen": ga,
                    "gold_rejected": gb,
                }
            )
        return pairs

    def rewards(self, rollout) -> torch.Tensor:
        """Gold score of prompt + completion for every row of a Rollout, ``(B,)``; unfinished rows count as written."""
        vals = [self.gold_score(p + c) for p, c in zip(rollout.row_prompts, rollout.completions, strict=True)]
        return torch.tensor(vals, dtype=torch.float32, device=rollout.input_ids.device)
