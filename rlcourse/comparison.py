"""Comparing RLHF methods fairly (chapter 10): memory of the models' state, time to a target, frontiers.

Chapter 10 runs PPO (chapter 07), GRPO (chapter 08) and DPO (chapter 09) side by side and reads their
histories with these helpers:

- :func:`state_bytes` -- bytes of model state: a *trained* parameter costs 4 copies with Adam
  (weight, gradient, two moment estimates), a *frozen* one costs 1. PPO-for-RLHF trains a policy
  (策略模型) and a critic (价值模型) and keeps a reward model (奖励模型) and a reference model (参考模型)
  frozen; GRPO drops the critic; DPO drops the critic and the reward model.
- :func:`time_to_target` -- first time a curve reaches a target (``inf`` if never): the honest way to
  say "faster", since time per step alone says nothing about how many steps are needed.
- :func:`pareto_front` -- the points of a (KL, gold reward) cloud that no other point beats on both
  axes: the reward-vs-KL frontier of the DPO paper's figure 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["ADAM_COPIES", "pareto_front", "state_bytes", "time_to_target"]

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
