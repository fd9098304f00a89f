"""Plotting (chapter 00): learning curves with smoothing and bands over seeds, in one style.

Every chapter draws its curves through :func:`plot_curves` so that a reader learns to read one
kind of figure: a line for the mean over seeds, a band for min..max (or mean +- std).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

METHOD_COLORS = {"PPO": "#1f77b4", "GRPO": "#d62728", "DPO": "#2ca02c", "SFT": "#7f7f7f", "start": "#7f7f7f"}
"""One colour per method in chapters 07-10 (PPO blue, GRPO red, DPO green; the SFT/start model grey)."""


def use_course_style() -> None:
    """Apply the course's matplotlib style (call once per notebook)."""
    plt.rcParams.update(
        {
            "figure.figsize": (7, 3.8),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": plt.cycler(color=COLORS),
            "legend.frameon": False,
            "font.size": 10,
        }
    )


def smooth(y: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average with a window of ``window`` points (shorter at the start).

    Shape: (T,) -> (T,). ``window=1`` returns the input unchanged.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"smooth expects a 1-D sequence, got shape {y.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window == 1 or y.size == 0:
        return y.copy()
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for t in range(y.size):
        lo = max(0, t + 1 - window)
        out[t] = (c[t + 1] - c[lo]) / (t + 1 - lo)
    return out


def _as_runs(runs, label: str) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Normalise one label's runs to lists of (x, y) arrays."""
    ys, xs = [], []
    for run in runs:
        if isinstance(run, tuple) and len(run) == 2:
            x, y = np.asarray(run[0], float), np.asarray(run[1], float)
            if x.shape != y.shape:
                raise ValueError(f"{label!r}: x has shape {x.shape} but y has shape {y.shape}")
            xs.append(x)
            ys.append(y)
        else:
            ys.append(np.asarray(run, float))
    if not ys:
        raise ValueError(f"{label!r} has no runs to plot")
    return ys, (xs if xs else None)


def plot_curves(
    curves: Mapping[str, Sequence],
    smooth_window: int = 1,
    band: str = "minmax",
    ax: plt.Axes | None = None,
    xlabel: str = "episode",
    ylabel: str = "return",
    title: str | None = None,
    n_points: int = 200,
) -> plt.Axes:
    """Plot the mean over seeds of each curve, with a band.

    Args:
        curves: ``{label: runs}``; each run is either a 1-D array of y-values (x = 0, 1, ...) or an
            ``(x, y)`` pair (e.g. env steps and episode returns), one run per seed. Runs with their own
            x are interpolated onto a common grid of ``n_points`` spanning the range all runs cover.
        smooth_window: moving-average window applied to each run before averaging.
        band: ``"minmax"`` (min..max over seeds), ``"std"`` (mean +- one std) or ``"none"``.
    """
    if band not in ("minmax", "std", "none"):
        raise ValueError(f"band must be 'minmax', 'std' or 'none', got {band!r}")
    if ax is None:
        _, ax = plt.subplots()
    for i, (label, runs) in enumerate(curves.items()):
        ys, xs = _as_runs(runs, label)
        ys = [smooth(y, smooth_window) for y in ys]
        if xs is None:
            n = min(len(y) for y in ys)
            grid = np.arange(n)
            mat = np.stack([y[:n] for y in ys])
        else:
            lo, hi = max(x[0] for x in xs), min(x[-1] for x in xs)
            grid = np.linspace(lo, hi, n_points) if hi > lo else np.array([lo])
            mat = np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys, strict=True)])
        color = COLORS[i % len(COLORS)]
        mean = mat.mean(axis=0)
        ax.plot(grid, mean, color=color, label=f"{label} (n={len(ys)})")
        if band == "minmax" and len(ys) > 1:
            ax.fill_between(grid, mat.min(0), mat.max(0), color=color, alpha=0.2)
        elif band == "std" and len(ys) > 1:
            sd = mat.std(0)
            ax.fill_between(grid, mean - sd, mean + sd, color=color, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return ax
