"""Supervised fine-tuning (SFT) and the script that rebuilds the shipped models in ``data/`` (chapter 05).

SFT is maximum likelihood on demonstrations: minimise the mean negative log-prob of the completion tokens
(prompt and padding masked out). The course trains two tiny GPT-2s from scratch on data it generates:

- ``data/arithmetic``: addition prompts from :class:`ArithmeticTask`'s train split. Training STOPS ON A
  MEASURED HELD-OUT ACCURACY in ``[target_low, target_high]`` (20-40%) -- the window lasts only ~50-75 steps
  and moves by ~50 steps between seeds, so a fixed step count would not do. The shipped policy then
  leaves room for RL to improve it.
- ``data/reviews``: whole reviews sampled uniformly from the review grammar (neutral sentiment on average),
  so RL has room to push the sentiment; trained for a fixed number of steps.

Each folder holds ``model.safetensors``, ``config.json``, ``generation_config.json``, the tokenizer files
and ``manifest.json`` (sha256 of every file, the training config, the recorded curve, final metrics).
Rebuild everything with ``python -m rlcourse.lm.sft --all`` (what ``make data`` runs; deterministic on a
given machine and torch version: one CPU thread, fixed seeds).

Public API
----------
- ``SFTConfig`` (dataclass, fields documented inline).
- ``sft_batch(tokenizer, prompts, completions, device=None) -> (input_ids, attention_mask, completion_mask)``,
  each ``(B, T)``, left-padded; the completion mask covers the completion's characters and ``<eos>``.
- ``sft_loss(model, input_ids, attention_mask, completion_mask) -> scalar``.
- ``train_sft(model, tokenizer, sample_fn, config, eval_fn=None, stop_fn=None, progress=False, *,
  callback=None) -> list[dict]`` (the recorded curve); a failure mid-run raises
  ``rlcourse.checks.TrainingError`` carrying the completed records (``.history``), Ctrl-C returns them.
- ``build_arithmetic(config, out_dir)``, ``build_reviews(config, out_dir)`` -> manifest dict, ``DEFAULTS``
  and ``main(argv)`` (the command line: ``--all``, ``--task``, ``--out``) live in
  :mod:`rlcourse.lm.shipped` and are reachable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlcourse.checks import TrainingError, call_user, check_int, check_number, interrupted
from rlcourse.lm.logprobs import masked_mean, shift_mask, token_logprobs
from rlcourse.lm.tokenizer import encode_text
from rlcourse.progress import progress_bar


@dataclass
class SFTConfig:
    task: str = "arithmetic"
    """which shipped model: ``"arithmetic"`` or ``"reviews"``"""
    seed: int = 0
    """seeds the model's initialisation and the data order"""
    max_steps: int = 3000
    """upper bound on optimiser steps (arithmetic stops earlier, on held-out accuracy)"""
    batch_size: int = 64
    """sequences per step"""
    lr: float = 1e-3
    """Adam learning rate (constant after ``warmup_steps`` of linear warm-up)"""
    warmup_steps: int = 20
    """linear learning-rate warm-up"""
    decay_steps: int | None = None
    """cosine decay of the learning rate to ``min_lr_ratio * lr`` over this many steps (None: constant)"""
    min_lr_ratio: float = 0.1
    """final learning rate as a fraction of ``lr`` when decaying"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip"""
    eval_every: int = 5
    """evaluate every this many steps (arithmetic: greedy accuracy on every held-out prompt)"""
    target_low: float = 0.20
    """arithmetic: the shipped model's held-out accuracy must lie in [target_low, target_high]"""
    target_high: float = 0.40
    """arithmetic: upper end of the accuracy band"""
    stop_at: float = 0.25
    """arithmetic: stop at the first evaluation with held-out accuracy >= stop_at (inside the band)"""
    n_embd: int = 64
    """model width"""
    n_layer: int = 4
    """transformer blocks"""
    n_head: int = 4
    """attention heads"""
    n_positions: int = 128
    """longest sequence the model accepts (tokens)"""

    def __post_init__(self) -> None:
        o = "SFTConfig"
        if not isinstance(self.task, str) or not self.task:
            raise TypeError(f"{o}.task must be a name such as 'arithmetic' or 'reviews', got {self.task!r}")
        check_int("seed", self.seed, low=0, owner=o, fix="use a non-negative integer such as 0")
        check_int("max_steps", self.max_steps, low=1, owner=o, fix="train for at least one step")
        check_int("batch_size", self.batch_size, low=1, owner=o, fix="use e.g. 64")
        check_number("lr", self.lr, low=0.0, low_open=True, owner=o, fix="use e.g. 1e-3")
        check_int("warmup_steps", self.warmup_steps, low=0, owner=o, fix="use 0 for no warm-up, e.g. 20")
        if self.decay_steps is not None:
            check_int("decay_steps", self.decay_steps, low=1, owner=o, fix="use None for a constant rate")
        check_number("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0, owner=o, fix="use e.g. 0.1")
        check_number("weight_decay", self.weight_decay, low=0.0, owner=o, fix="use 0.0 (none) or e.g. 0.01")
        check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True, owner=o, fix="use 1.0")
        check_int("eval_every", self.eval_every, low=1, owner=o, fix="evaluate every few steps, e.g. 5")
        for name in ("target_low", "target_high", "stop_at"):
            check_number(name, getattr(self, name), low=0.0, high=1.0, owner=o, fix="an accuracy in [0, 1]")
        if not self.target_low <= self.stop_at <= self.target_high:
            raise ValueError(
                f"{o}.stop_at={self.stop_at!r} must lie in [target_low, target_high] = "
                f"[{self.target_low!r}, {self.target_high!r}]; training stops at the first evaluation "
                "with accuracy >= stop_at, which must be inside the band"
            )
        for name in ("n_embd", "n_layer", "n_head"):
            check_int(name, getattr(self, name), low=1, owner=o, fix="a positive integer")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"{o}.n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                "each head gets n_embd // n_head dimensions (e.g. n_embd=64, n_head=4)"
            )
        check_int("n_positions", self.n_positions, low=2, owner=o, fix="use e.g. 128")


# ----------------------------------------------------------------------------------------- core


def sft_batch(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``<bos> prompt completion <eos>``, left-padded; returns ``input_ids, attention_mask, completion_mask``.

    All three are ``(B, T)`` long tensors; ``completion_mask`` is 1 on the completion's tokens and its ``<eos>``.
    """
    for name, texts in (("prompts", prompts), ("completions", completions)):
        if not isinstance(texts, (list, tuple)):
            raise TypeError(
                f"{name} must be a list of strings, got {type(texts).__name__}; wrap one string: [text]"
            )
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions; they must pair up")
    if len(prompts) == 0:
        raise ValueError("empty batch: pass at least one (prompt, completion) pair")
    rows, n_comp = [], []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        p_ids = encode_text(tokenizer, p, name=f"prompts[{i}]")
        c_ids = encode_text(tokenizer, c, add_special_tokens=False, name=f"completions[{i}]")
        c_ids = c_ids + [tokenizer.eos_token_id]
        rows.append(p_ids + c_ids)
        n_comp.append(len(c_ids))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    att = torch.zeros_like(ids)
    comp = torch.zeros_like(ids)
    for i, (r, k) in enumerate(zip(rows, n_comp, strict=True)):
        ids[i, width - len(r) :] = torch.tensor(r)
        att[i, width - len(r) :] = 1
        comp[i, width - k :] = 1
    return ids.to(device), att.to(device), comp.to(device)


def sft_loss(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """Mean negative log-prob over completion tokens (a scalar): ``-masked_mean(token_logprobs, mask)``."""
    logp = token_logprobs(model, input_ids, attention_mask)
    return -masked_mean(logp, shift_mask(completion_mask).to(logp.dtype))


def lr_factor(step: int, config: SFTConfig) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then constant or cosine decay."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.decay_steps is None:
        return warm
    progress = min(1.0, step / max(1, config.decay_steps))
    cos = 0.5 * (1.0 + math.cos(math.pi * progress))
    return warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cos)


def train_sft(
    model,
    tokenizer,
    sample_fn: Callable[[np.random.Generator, int], tuple[list[str], list[str]]],
    config: SFTConfig,
    eval_fn: Callable[[], dict] | None = None,
    stop_fn: Callable[[dict], bool] | None = None,
    progress: bool = False,
    *,
    callback: Callable[[int, list[dict]], Any] | None = None,
) -> list[dict]:
    """Train ``model`` in place by SFT; return the recorded curve, one dict per evaluation.

    Args:
        sample_fn: ``(rng, batch_size) -> (prompts, completions)``.
        eval_fn: called every ``config.eval_every`` steps; returns metrics (e.g. ``{"heldout_acc": 0.3}``).
        stop_fn: given the latest record (``step``, ``loss`` and ``eval_fn``'s metrics), True stops training.
        callback: ``callback(step, history)`` after every step (``step`` = completed steps, from 1).

    If anything raises mid-run (one of your functions included, named in the message), a
    :class:`rlcourse.checks.TrainingError` carries the records of the completed steps (``err.history``);
    Ctrl-C (KeyboardInterrupt) stops training and returns them.
    """
    if not isinstance(config, SFTConfig):
        raise TypeError(f"config must be an SFTConfig, got {type(config).__name__}")
    for name, fn in (
        ("sample_fn", sample_fn),
        ("eval_fn", eval_fn),
        ("stop_fn", stop_fn),
        ("callback", callback),
    ):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function, got {fn!r}")
    device = next(model.parameters()).device
    rng = np.random.default_rng(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    history: list[dict] = []
    losses: list[float] = []
    done = 0  # completed steps
    model.train()
    try:
        for step in progress_bar(range(1, config.max_steps + 1), progress, f"SFT {config.task}"):
            prompts, completions = call_user(sample_fn, "sample_fn", rng, config.batch_size)
            loss = sft_loss(model, *sft_batch(tokenizer, prompts, completions, device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            opt.step()
            sched.step()
            losses.append(loss.item())
            stop = False
            if step % config.eval_every == 0 or step == config.max_steps:
                record = {"step": step, "loss": float(np.mean(losses[-config.eval_every :]))}
                if eval_fn is not None:
                    model.eval()
                    record.update(_metrics(call_user(eval_fn, "eval_fn")))
                    model.train()
                history.append(record)
                stop = stop_fn is not None and bool(call_user(stop_fn, "stop_fn", record))
            done = step
            if callback is not None:
                call_user(callback, "callback", step, history)
            if stop:
                break
    except KeyboardInterrupt:
        interrupted("train_sft", done)
    except Exception as e:
        raise TrainingError("train_sft", done, history, e) from e
    finally:
        model.eval()
    return history


def _metrics(metrics: Any) -> dict:
    if not isinstance(metrics, dict):
        raise TypeError(
            f"eval_fn must return a dict of metrics such as {{'accuracy': 0.3}}, got {metrics!r:.80}"
        )
    return metrics


def __getattr__(name: str):
    """``build_arithmetic``, ``build_reviews``, ``DEFAULTS``, ``main`` moved to :mod:`rlcourse.lm.shipped`."""
    if name in ("build_arithmetic", "build_reviews", "DEFAULTS", "main"):
        from rlcourse.lm import shipped

        return getattr(shipped, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # `python -m rlcourse.lm.sft --all` is what `make data` runs
    from rlcourse.lm.shipped import main

    main()
