"""What the command lines ``python -m rlcourse.grpo`` / ``python -m rlcourse.dpo`` share (chapter 12).

Flags every run has (:func:`add_common_args`), the device a rank uses (:func:`rank_device`), the one line
rank 0 prints per step (:func:`step_line`) and the run folder rank 0 writes atomically (:func:`save_run`):
``OUT/model/`` (the trained policy, :func:`rlcourse.lm.files.save_model`) and ``OUT/history.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from rlcourse import distributed
from rlcourse.checks import atomic_dir


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--seed``, ``--threads``, ``--backend``, ``--out``, ``--quiet``."""
    parser.add_argument("--seed", type=int, default=0, help="seeds the batches and the sampling (default 0)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads per rank (default: RLCOURSE_THREADS or 1; keep ranks x threads <= free cores)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=("gloo", "nccl"), default=None,
        help="torch.distributed backend under torchrun (default: nccl with CUDA, else gloo)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True,
        help="run folder rank 0 writes atomically: OUT/model/ (safetensors) and OUT/history.json",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="do not print a line per step")


def check_out(out: Path) -> None:
    """Refuse a non-empty ``out`` that is not a previous run folder (saving replaces it as a whole)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; pass a folder for the run, e.g. runs/grpo")
    if out.is_dir() and any(out.iterdir()) and not (out / "history.json").is_file():
        raise FileExistsError(
            f"--out {out} exists and holds files that are not a previous run; saving replaces the whole "
            "folder, so pick a new (or empty) folder"
        )


def rank_device() -> torch.device:
    """This rank's device: its own GPU under NCCL (``LOCAL_RANK``), else :func:`rlcourse.device.get_device`."""
    from rlcourse.device import get_device

    if distributed.is_active() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return get_device(set_threads=False)  # threads were set by init_from_env


def step_line(step: int, steps: int, hist: dict, keys: tuple[str, ...]) -> str:
    """``step 3/4  reward 0.512  loss -0.0021  step_time 0.41s``: the latest values of ``keys``."""
    parts = [f"step {step}/{steps}"] + [f"{k} {hist[k][-1]:.4g}" for k in keys if hist.get(k)]
    return "  ".join(parts) + f"  step_time {hist['step_time'][-1]:.3f}s"


def nan_to_none(obj: Any) -> Any:
    """``obj`` with NaN / inf floats replaced by None (JSON has no NaN) and tensors / tuples made plain."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return nan_to_none(obj.tolist())
    return obj


def run_summary(hist: dict, cfg: Any, model: str, threads: int, sampling: str) -> dict:
    """The ``history.json`` object, without the ``"weights"`` proof (added by the caller)."""
    from dataclasses import asdict

    rank, world_size = distributed.world()
    times = hist["step_time"][1:] or hist["step_time"]
    return {
        "world_size": world_size,
        "threads": threads,
        "backend": torch.distributed.get_backend() if distributed.is_active() else None,
        "cpu_cores": distributed.cpu_cores(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "model": model,
        "config": asdict(cfg),
        "sampling": sampling,
        "mean_step_time": sum(times) / len(times) if times else None,
        "history": hist,
    }


def save_run(out: Path, model, tokenizer, summary: dict) -> None:
    """Rank 0: write ``out/model/`` and ``out/history.json`` into a fresh folder that replaces ``out`` whole."""
    from rlcourse.lm.files import save_model

    check_out(out)
    text = json.dumps(nan_to_none(summary), indent=1, allow_nan=False)
    with atomic_dir(out) as tmp:
        save_model(model, tmp / "model", tokenizer, trained_with=f"world_size={summary['world_size']}")
        (tmp / "history.json").write_text(text)
