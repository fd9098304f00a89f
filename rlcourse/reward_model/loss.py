"""The Bradley-Terry loss and the metrics of a reward model (chapter 06): accuracy, probability, calibration.

Conventions (TRL ``RewardTrainer``, trl 1.16): the margin is subtracted inside the logsigmoid; the
centring term ``c * mean((r_chosen + r_rejected)^2)`` is added to the loss when its coefficient is set
(TRL suggests 0.01); accuracy counts ``r_chosen > r_rejected`` (ties are wrong).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rlcourse.checks import check_finite, check_int, check_number


def check_pair_scores(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    names: tuple[str, str] = ("chosen_scores", "rejected_scores"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two (B,) score tensors (finite, same shape, B >= 1); return them as floats."""
    out = []
    for name, t in zip(names, (chosen, rejected), strict=True):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (B,), got {type(t).__name__}")
        if t.ndim != 1:
            raise ValueError(f"{name} must have shape (B,), one score per pair; got shape {tuple(t.shape)}")
        out.append(t if t.is_floating_point() else t.float())
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"{names[0]} {tuple(chosen.shape)} and {names[1]} {tuple(rejected.shape)} must have the "
            "same shape (one chosen and one rejected score per pair)"
        )
    if chosen.numel() == 0:
        raise ValueError(f"empty batch: {names[0]} and {names[1]} hold no pairs")
    for name, t in zip(names, out, strict=True):
        check_finite(name, t)
    return out[0], out[1]


def bradley_terry_loss(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of the Bradley-Terry model, as in TRL's ``RewardTrainer``.

    ``mean(-logsigmoid(chosen - rejected - margin)) [+ center_coef * mean((chosen + rejected)^2)]``

    Args:
        chosen_scores: (B,) reward of the preferred answer of each pair (integers are used as floats).
        rejected_scores: (B,) reward of the other answer.
        margin: None, a float, or (B,) -- how much better the chosen answer must score (TRL's
            optional ``margin`` column, e.g. from a graded preference).
        center_coef: None/0 (off) or the coefficient (>= 0) of TRL's reward-centring term.

    Returns:
        scalar tensor.
    """
    chosen_scores, rejected_scores = check_pair_scores(chosen_scores, rejected_scores)
    diff = chosen_scores - rejected_scores
    if margin is not None:
        if isinstance(margin, torch.Tensor):
            if margin.shape not in (torch.Size([]), chosen_scores.shape):
                raise ValueError(
                    f"margin must be a float, a scalar or have shape {tuple(chosen_scores.shape)} like the "
                    f"scores; got shape {tuple(margin.shape)}"
                )
            margin = check_finite("margin", margin.to(diff))
        else:
            check_number("margin", margin, fix="use a float such as 0.5, a (B,) tensor, or None")
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coef is not None:
        check_number("center_coef", center_coef, low=0, fix="use 0.01 (TRL's suggestion) or None")
        if center_coef:
            loss = loss + center_coef * ((chosen_scores + rejected_scores) ** 2).mean()
    return loss


def preference_accuracy(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> float:
    """Fraction of pairs where the chosen answer scores strictly higher. Shapes (B,), (B,) -> float."""
    chosen_scores, rejected_scores = check_pair_scores(chosen_scores, rejected_scores)
    return (chosen_scores > rejected_scores).float().mean().item()


def preference_probability(
    scores_a: torch.Tensor, scores_b: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """Bradley-Terry probability that a is preferred to b: ``sigmoid((a - b) / scale)``. (B,), (B,) -> (B,)."""
    scores_a, scores_b = check_pair_scores(scores_a, scores_b, ("scores_a", "scores_b"))
    check_number("scale", scale, low=0, low_open=True, fix="use 1.0 (the Bradley-Terry model itself)")
    return torch.sigmoid((scores_a - scores_b) / scale)


def calibration_curve(
    predicted: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, n_bins: int = 10
) -> dict[str, np.ndarray]:
    """Bin predicted preference probabilities and average the target in each bin.

    Args:
        predicted: (N,) predicted P(a preferred to b), in [0, 1].
        target: (N,) the gold probability, or the 0/1 outcome, for the same pairs.
        n_bins: equal-width bins over [0, 1].

    Returns:
        dict of arrays, one entry per non-empty bin: ``"mean_predicted"``, ``"mean_target"``,
        ``"count"``, ``"bin_lo"``, ``"bin_hi"``.
    """
    p = np.asarray(
        predicted.detach().cpu() if isinstance(predicted, torch.Tensor) else predicted, dtype=float
    )
    t = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target, dtype=float)
    if p.ndim != 1 or p.shape != t.shape or p.size == 0:
        raise ValueError(
            f"predicted and target must be non-empty 1-D arrays of equal shape, got {p.shape}, {t.shape}"
        )
    for name, x in (("predicted", p), ("target", t)):
        if not np.all(np.isfinite(x)):
            bad = int(np.flatnonzero(~np.isfinite(x))[0])
            raise ValueError(f"{name} contains a non-finite value ({x[bad]}) at index {bad}")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(
            f"predicted must hold probabilities in [0, 1], got values in [{p.min():.3g}, {p.max():.3g}]"
        )
    check_int("n_bins", n_bins, low=1, fix="use 10")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    out: dict[str, list] = {"mean_predicted": [], "mean_target": [], "count": [], "bin_lo": [], "bin_hi": []}
    for b in range(n_bins):
        sel = idx == b
        if not sel.any():
            continue
        out["mean_predicted"].append(p[sel].mean())
        out["mean_target"].append(t[sel].mean())
        out["count"].append(int(sel.sum()))
        out["bin_lo"].append(edges[b])
        out["bin_hi"].append(edges[b + 1])
    return {k: np.asarray(v) for k, v in out.items()}


def expected_calibration_error(curve: dict[str, np.ndarray]) -> float:
    """Count-weighted mean of ``|mean_predicted - mean_target|`` over the bins of :func:`calibration_curve`."""
    if not isinstance(curve, dict) or not {"count", "mean_predicted", "mean_target"} <= set(curve):
        raise ValueError("curve must be the dict returned by calibration_curve(predicted, target)")
    w = curve["count"] / curve["count"].sum()
    return float((w * np.abs(curve["mean_predicted"] - curve["mean_target"])).sum())
