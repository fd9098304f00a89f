"""Toy Bradley-Terry (chapter 06, part 1): a few bandit arms with known utilities and a noisy judge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlcourse.checks import check_int, check_number
from rlcourse.reward_model.loss import bradley_terry_loss


def simulate_preferences(
    utilities: Sequence[float] | np.ndarray, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Ask a noisy Bradley-Terry "human" to compare random pairs of arms.

    Each comparison picks two different arms i, j uniformly and prefers i with probability
    ``sigmoid(u_i - u_j)``.

    Returns:
        ``(winners, losers)``, integer arrays of shape (n_pairs,).
    """
    u = np.asarray(utilities, dtype=float)
    if u.ndim != 1 or u.size < 2:
        raise ValueError(f"utilities must be a 1-D sequence of at least 2 arms, got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise ValueError(f"utilities must be finite numbers, got {u.tolist()}")
    if isinstance(n_pairs, np.integer):  # e.g. an element of np.array([25, 50, ...])
        n_pairs = int(n_pairs)
    check_int("n_pairs", n_pairs, low=1, fix="ask for at least one comparison")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    i = rng.integers(0, u.size, n_pairs)
    j = (i + rng.integers(1, u.size, n_pairs)) % u.size  # a different arm
    p_i = 1.0 / (1.0 + np.exp(-(u[i] - u[j])))
    i_wins = rng.random(n_pairs) < p_i
    return np.where(i_wins, i, j), np.where(i_wins, j, i)


def fit_bradley_terry(
    winners: np.ndarray | torch.Tensor,
    losers: np.ndarray | torch.Tensor,
    n_items: int,
    steps: int = 300,
    lr: float = 0.1,
) -> torch.Tensor:
    """Fit one utility per arm to observed preferences with the Bradley-Terry loss (full-batch Adam).

    Only differences are identified, so the result is shifted to mean 0.

    Args:
        winners, losers: (N,) arm indices of each comparison's preferred and other arm.
        n_items: number of arms.
        steps, lr: Adam steps and learning rate.

    Returns:
        (n_items,) fitted utilities, mean 0.
    """
    n_items, steps = (int(x) if isinstance(x, np.integer) else x for x in (n_items, steps))
    check_int("n_items", n_items, low=2)
    check_int("steps", steps, low=1, fix="use 300")
    check_number("lr", lr, low=0, low_open=True, fix="use 0.1")
    w = torch.as_tensor(np.asarray(winners), dtype=torch.long)
    lo = torch.as_tensor(np.asarray(losers), dtype=torch.long)
    if w.ndim != 1 or w.shape != lo.shape or w.numel() == 0:
        raise ValueError(
            f"winners and losers must be non-empty 1-D arrays of equal length, got {w.shape}, {lo.shape}"
        )
    if int(torch.maximum(w, lo).max()) >= n_items or int(torch.minimum(w, lo).min()) < 0:
        raise ValueError(f"arm indices must lie in [0, {n_items}); got values outside")
    theta = torch.zeros(n_items, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        loss = bradley_terry_loss(theta[w], theta[lo])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return theta - theta.mean()
