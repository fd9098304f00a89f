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
- ``train_sft(model, tokenizer, sample_fn, config, eval_fn=None) -> list[dict]`` (the recorded curve).
- ``build_arithmetic(config, out_dir)`` and ``build_reviews(config, out_dir)`` -> manifest dict.
- ``main(argv)``: the command line (``--all``, ``--task``, ``--out``).
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2LMHeadModel

from rlcourse.lm.logprobs import masked_mean, shift_mask, token_logprobs
from rlcourse.lm.model import count_parameters, data_dir, init_model, quiet_progress, write_manifest
from rlcourse.lm.tasks import ArithmeticTask, ReviewTask
from rlcourse.lm.tokenizer import build_tokenizer
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


# ----------------------------------------------------------------------------------------- core


def sft_batch(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``<bos> prompt completion <eos>``, left-padded; returns ``input_ids, attention_mask, completion_mask``.

    All three are ``(B, T)`` long tensors; ``completion_mask`` is 1 on the completion's tokens and its ``<eos>``.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions; they must pair up")
    if len(prompts) == 0:
        raise ValueError("empty batch: pass at least one (prompt, completion) pair")
    rows, n_comp = [], []
    for p, c in zip(prompts, completions, strict=True):
        p_ids = tokenizer(p)["input_ids"]
        c_ids = tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
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
) -> list[dict]:
    """Train ``model`` in place by SFT; return the recorded curve, one dict per evaluation.

    Args:
        sample_fn: ``(rng, batch_size) -> (prompts, completions)``.
        eval_fn: called every ``config.eval_every`` steps; returns metrics (e.g. ``{"heldout_acc": 0.3}``).
        stop_fn: given the latest record (``step``, ``loss`` and ``eval_fn``'s metrics), True stops training.
    """
    device = next(model.parameters()).device
    rng = np.random.default_rng(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    history: list[dict] = []
    losses: list[float] = []
    model.train()
    bar = progress_bar(range(1, config.max_steps + 1), progress, f"SFT {config.task}")
    for step in bar:
        prompts, completions = sample_fn(rng, config.batch_size)
        batch = sft_batch(tokenizer, prompts, completions, device)
        loss = sft_loss(model, *batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % config.eval_every == 0 or step == config.max_steps:
            record = {"step": step, "loss": float(np.mean(losses[-config.eval_every :]))}
            if eval_fn is not None:
                model.eval()
                record.update(eval_fn())
                model.train()
            history.append(record)
            if stop_fn is not None and stop_fn(record):
                break
    model.eval()
    return history


# ----------------------------------------------------------------------------------------- shipped models


def _new_model(config: SFTConfig, tokenizer) -> GPT2LMHeadModel:
    return init_model(
        tokenizer,
        seed=config.seed,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_positions=config.n_positions,
    )


def _save(model, tokenizer, out: Path, **info) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with quiet_progress():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return write_manifest(out, **info)


def build_arithmetic(config: SFTConfig, out_dir: str | Path) -> dict:
    """Train the arithmetic model until held-out accuracy enters the target band; save it; return the manifest."""
    task = ArithmeticTask()
    tokenizer = build_tokenizer()
    model = _new_model(config, tokenizer)

    def sample_fn(rng, n):
        prompts = task.sample_prompts(n, rng)
        return prompts, [task.answer(p) for p in prompts]

    def eval_fn():
        return {"heldout_acc": task.accuracy(model, tokenizer, task.heldout_prompts)}

    def stop_fn(rec):
        if rec["heldout_acc"] > config.target_high:
            raise RuntimeError(
                f"held-out accuracy jumped to {rec['heldout_acc']:.3f} at step {rec['step']}, past the band "
                f"[{config.target_low}, {config.target_high}]; lower lr or eval_every"
            )
        return rec["heldout_acc"] >= config.stop_at

    t0 = time.perf_counter()
    history = train_sft(model, tokenizer, sample_fn, config, eval_fn, stop_fn)
    seconds = time.perf_counter() - t0
    final = history[-1]
    if not config.target_low <= final["heldout_acc"] <= config.target_high:
        raise RuntimeError(
            f"SFT ended at held-out accuracy {final['heldout_acc']:.3f}, outside the target band"
        )
    metrics = {
        "steps": final["step"],
        "heldout_accuracy": final["heldout_acc"],
        "n_heldout": len(task.heldout_prompts),
        "train_accuracy_sample": task.accuracy(model, tokenizer, task.sample_prompts(500, 123)),
        "final_loss": final["loss"],
        "parameters": count_parameters(model),
    }
    print(f"arithmetic: {metrics} in {seconds:.1f} s")
    return _save(
        model,
        tokenizer,
        Path(out_dir),
        task="arithmetic",
        sft_config=asdict(config),
        metrics=metrics,
        history=history,
    )


def build_reviews(config: SFTConfig, out_dir: str | Path) -> dict:
    """Train the reviews model on whole reviews from the grammar for ``config.max_steps``; save it."""
    from rlcourse.lm.generate import generate

    task = ReviewTask()
    tokenizer = build_tokenizer()
    model = _new_model(config, tokenizer)

    def sample_fn(rng, n):
        return [""] * n, task.sample_reviews(n, rng)

    def eval_fn(n: int = 64):
        g = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
        roll = generate(model, tokenizer, task.prompts(n, seed=1), max_new_tokens=96, generator=g)
        return {
            "grammatical": task.grammatical_rate(roll.texts),
            "gold_mean": float(np.mean([task.gold_score(t) for t in roll.texts])),
            "finished": float(roll.finished.float().mean()),
        }

    t0 = time.perf_counter()
    history = train_sft(model, tokenizer, sample_fn, config, eval_fn)
    seconds = time.perf_counter() - t0
    final = eval_fn(512)
    metrics = {
        "steps": history[-1]["step"],
        "grammatical_rate": final["grammatical"],
        "gold_mean": final["gold_mean"],
        "finished_rate": final["finished"],
        "n_eval_samples": 512,
        "final_loss": history[-1]["loss"],
        "parameters": count_parameters(model),
    }
    print(f"reviews: {metrics} in {seconds:.1f} s")
    return _save(
        model,
        tokenizer,
        Path(out_dir),
        task="reviews",
        sft_config=asdict(config),
        metrics=metrics,
        history=history,
    )


DEFAULTS = {
    # 96 wide x 4 blocks (465k parameters): GRPO lifts this model from ~25% to > 55% held-out accuracy in
    # ~400 steps, where the 64-wide (211k) model plateaued near +13-18 points. Seed 0 overshoots the
    # band's low end (33.2% at its first check >= 25%); seed 1 stops at 25.4%, leaving more room for RL.
    "arithmetic": SFTConfig(task="arithmetic", n_embd=96, seed=1),
    "reviews": SFTConfig(
        task="reviews", max_steps=1500, decay_steps=1500, eval_every=100, lr=2e-3, batch_size=32
    ),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild the shipped tiny language models in data/.")
    parser.add_argument("--all", action="store_true", help="rebuild every shipped model")
    parser.add_argument("--task", choices=sorted(DEFAULTS), action="append", help="rebuild one model")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the repo's data/)")
    args = parser.parse_args(argv)
    tasks = sorted(DEFAULTS) if args.all else (args.task or [])
    if not tasks:
        parser.error("pass --all or --task NAME")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = args.out or data_dir()
    builders = {"arithmetic": build_arithmetic, "reviews": build_reviews}
    for name in tasks:
        builders[name](DEFAULTS[name], out / name)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
