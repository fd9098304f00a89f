"""Comparing RLHF methods fairly (chapter 10): memory, a common evaluation, seeds, time to a target, frontiers.

Chapter 10 runs PPO (chapter 07), GRPO (chapter 08) and DPO (chapter 09) side by side, with several
seeds each, and reads their results with these helpers:

- :func:`state_bytes` -- bytes of model state: a *trained* parameter costs 4 copies with Adam
  (weight, gradient, two moment estimates), a *frozen* one costs 1. PPO-for-RLHF trains a policy
  (策略模型) and a critic (价值模型) and keeps a reward model (奖励模型) and a reference model (参考模型)
  frozen; GRPO drops the critic; DPO drops the critic and the reward model.
- :func:`time_to_target` -- first time a curve reaches a target (``inf`` if never): the honest way to
  say "faster", since time per step alone says nothing about how many steps are needed.
- :func:`pareto_front` -- the points of a (KL, gold reward) cloud that no other point beats on both
  axes: the reward-vs-KL frontier of the DPO paper's figure 2.
- :func:`finished_within` -- the fraction of samples that emit ``<eos>`` within each length limit: where
  the limit is short, "learning to stop" earns reward by itself and confounds a comparison.
- :func:`evaluate_policy` -- one evaluation for every method: gold reward on all samples and on the
  finished ones separately, finish rate, grammaticality, KL to the reference.
- :func:`spread` and :func:`seeds_agree` -- mean / min / max over seeds, and whether every seed says
  the same thing with a margin (the only case in which the chapter states a conclusion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "ADAM_COPIES",
    "evaluate_policy",
    "finished_within",
    "pareto_front",
    "seeds_agree",
    "spread",
    "state_bytes",
    "time_to_target",
    "zero_state_bytes",
]

ADAM_COPIES = 4  # weight + gradient + Adam's first and second moments


def state_bytes(trained: Sequence[int], frozen: Sequence[int] = (), bytes_per_param: int = 4) -> int:
    """Bytes of model state: ``bytes_per_param * (4 * sum(trained) + sum(frozen))``.

    Args:
        trained: parameter counts of the models being trained with Adam (each costs weight, gradient and
            two moments: 4 copies).
        frozen: parameter counts of models only run forward (1 copy each).
        bytes_per_param: 4 for float32, 2 for bfloat16.

    Activations are not included: they depend on batch size and sequence length, not on the method.
    """
    counts = list(trained) + list(frozen)
    if any((not isinstance(c, (int, np.integer))) or c < 0 for c in counts):
        raise ValueError(
            f"parameter counts must be non-negative integers, got trained={trained}, frozen={frozen}"
        )
    if bytes_per_param <= 0:
        raise ValueError(f"bytes_per_param must be positive, got {bytes_per_param}")
    return int(bytes_per_param * (ADAM_COPIES * sum(trained) + sum(frozen)))


def zero_state_bytes(n_params: int, n_gpus: int = 1, stage: int = 0) -> float:
    """Bytes of a trained model's state per GPU in mixed precision with Adam, under DeepSpeed ZeRO (chapter 12).

    Per parameter: a bf16 weight (2 bytes), a bf16 gradient (2) and fp32 optimiser state (12: master weight
    and Adam's two moments), 16 bytes in all. ZeRO stage 1 splits the optimiser state over the ``n_gpus``
    data-parallel ranks, stage 2 the gradients too, stage 3 the weights too (Rajbhandari et al. 2020, table 1):
    stage 0 ``16 n``, 1 ``4 n + 12 n / N``, 2 ``2 n + 14 n / N``, 3 ``16 n / N``.
    """
    if isinstance(n_params, bool) or not isinstance(n_params, (int, np.integer)) or n_params < 0:
        raise ValueError(
            f"n_params must be a non-negative integer, got {n_params!r}; e.g. n_params=494_032_768"
        )
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, (int, np.integer)) or n_gpus < 1:
        raise ValueError(f"n_gpus must be a positive integer, got {n_gpus!r}; e.g. n_gpus=8")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be a ZeRO stage 0, 1, 2 or 3, got {stage!r}")
    weights, grads, optim = 2 * n_params, 2 * n_params, 12 * n_params
    split = {0: 0, 1: optim, 2: optim + grads, 3: optim + grads + weights}[stage]
    return (weights + grads + optim - split) + split / n_gpus


def time_to_target(times: Sequence[float], values: Sequence[float], target: float) -> float:
    """The first ``times[i]`` with ``values[i] >= target``; ``math.inf`` if the curve never gets there.

    times, values: two sequences of the same length (e.g. cumulative seconds and a smoothed reward).
    """
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"times and values must be 1-D and of equal length, got {t.shape} and {v.shape}")
    hit = np.nonzero(v >= target)[0]
    return float(t[hit[0]]) if hit.size else math.inf


def pareto_front(kl: Sequence[float], gold: Sequence[float]) -> list[int]:
    """Indices of the points not dominated by another (lower-or-equal KL and higher-or-equal gold, one strictly).

    kl, gold: equal-length sequences. Returns indices sorted by increasing KL (ties: higher gold first).
    """
    k = np.asarray(kl, dtype=float)
    g = np.asarray(gold, dtype=float)
    if k.shape != g.shape or k.ndim != 1:
        raise ValueError(f"kl and gold must be 1-D and of equal length, got {k.shape} and {g.shape}")
    order = sorted(range(len(k)), key=lambda i: (k[i], -g[i]))
    front, best = [], -math.inf
    for i in order:
        if g[i] > best:
            front.append(i)
            best = g[i]
    return front


def finished_within(
    limits: Sequence[int], lengths: Sequence[int] | torch.Tensor, finished: Sequence[bool] | torch.Tensor
) -> list[float]:
    """Fraction of samples that emitted ``<eos>`` within each limit (in tokens, ``<eos>`` included).

    Args:
        limits: length limits to evaluate, e.g. ``[40, 60, 80]``.
        lengths: (N,) generated tokens per sample (``Rollout.completion_lengths``), sampled with a limit at
            least as large as every entry of ``limits``.
        finished: (N,) whether each sample emitted ``<eos>`` (``Rollout.finished``).

    Sampling consumes the same random numbers per token whatever the limit, so a sample that ends within
    ``L`` tokens under a larger limit ends the same way under limit ``L``: one batch measures every limit.
    """
    n = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths, dtype=float)
    f = np.asarray(finished.cpu() if isinstance(finished, torch.Tensor) else finished, dtype=bool)
    if n.shape != f.shape or n.ndim != 1 or n.size == 0:
        raise ValueError(
            f"lengths and finished must be 1-D, non-empty and of equal length, got {n.shape} and {f.shape}"
        )
    bad = [x for x in limits if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1]
    if bad:
        raise ValueError(f"limits must be positive integers (tokens), got {list(limits)}")
    return [float(np.mean(f & (n <= x))) for x in limits]


@torch.no_grad()
def evaluate_policy(
    policy,
    reference,
    tokenizer,
    prompts: Sequence[str],
    task,
    max_new_tokens: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict:
    """Sample one completion per prompt and measure it the same way for every method.

    Args:
        policy, reference: causal LMs (the trained policy and the frozen reference, 参考模型).
        prompts: N prompt strings; task: has ``gold_score(text)`` and ``is_grammatical(text)``
            (``rlcourse.lm.tasks.ReviewTask``).
        max_new_tokens: the length limit; temperature: sampling and log-prob temperature.
        generator: a ``torch.Generator`` on the policy's device (same seed for every method: same draws).

    Returns:
        floats ``gold`` (mean gold reward of all N samples; a sample cut off by the limit is ungrammatical
        and scores -1), ``finished`` (fraction that emitted ``<eos>``), ``gold_finished`` (mean gold of the
        finished samples only; NaN if none), ``grammatical``, ``kl`` (mean over samples of the summed
        ``log pi - log pi_ref`` over the completion, nats: an unbiased estimate of the sequence KL),
        ``length`` (mean generated tokens); and ``texts`` (N strings).
    """
    from rlcourse.lm.generate import generate
    from rlcourse.lm.logprobs import shift_mask, token_logprobs

    if len(prompts) == 0:
        raise ValueError("prompts is empty; pass e.g. ReviewTask.prompts(96, seed=1)")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    roll = generate(
        policy,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        generator=generator,
    )
    mask = shift_mask(roll.completion_mask).float()
    lp = token_logprobs(policy, roll.input_ids, roll.attention_mask, temperature)
    ref = token_logprobs(reference, roll.input_ids, roll.attention_mask, temperature)
    gold = np.array([task.gold_score(t) for t in roll.texts])
    fin = roll.finished.cpu().numpy().astype(bool)
    return {
        "gold": float(gold.mean()),
        "finished": float(fin.mean()),
        "gold_finished": float(gold[fin].mean()) if fin.any() else math.nan,
        "grammatical": float(np.mean([task.is_grammatical(t) for t in roll.texts])),
        "kl": ((lp - ref) * mask).sum(-1).mean().item(),
        "length": roll.completion_lengths.float().mean().item(),
        "texts": roll.texts,
    }


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, min, max)`` of per-seed values (1-D, non-empty): what the chapter prints for every number."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence (one entry per seed), got shape {v.shape}")
    return float(v.mean()), float(v.min()), float(v.max())


def seeds_agree(a: Sequence[float], b: Sequence[float], margin: float) -> int:
    """+1 if ``a > b + margin`` for every seed, -1 if ``a < b - margin`` for every seed, 0 otherwise.

    a, b: per-seed values paired by seed (equal length >= 1; ``math.inf`` allowed, e.g. "never reached
    the target"); margin >= 0, in the values' units. 0 means
    "the seeds disagree or the gap is within the margin": the chapter then states no winner.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"a and b must be 1-D, non-empty, one value per seed, got {x.shape} and {y.shape}")
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    if np.all(x > y + margin):  # compared, not subtracted: inf (a target never reached) works
        return 1
    if np.all(x < y - margin):
        return -1
    return 0
