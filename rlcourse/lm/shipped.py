"""The shipped models in ``data/``: how ``make data`` (``python -m rlcourse.lm.sft --all``) builds them (chapter 05).

- ``data/arithmetic``: a tiny GPT-2 trained by SFT on addition prompts from :class:`ArithmeticTask`'s train
  split, STOPPED ON A MEASURED HELD-OUT ACCURACY in ``[target_low, target_high]`` (20-40%), so RL has room
  to improve it;
- ``data/reviews``: trained on whole reviews sampled from the review grammar for a fixed number of steps.

Each folder is written atomically (:func:`rlcourse.lm.files.save_model`): an interrupted rebuild leaves
the previous model in place. Deterministic on a given machine and torch version (one CPU thread, fixed
seeds), so a rebuild gives byte-identical files.

Public API
----------
- ``build_arithmetic(config, out_dir)`` and ``build_reviews(config, out_dir)`` -> manifest dict.
- ``DEFAULTS``: the ``SFTConfig`` of each shipped model.
- ``main(argv)``: the command line (``--all``, ``--task``, ``--out``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2LMHeadModel

from rlcourse.lm.files import data_dir, save_model
from rlcourse.lm.model import count_parameters, init_model
from rlcourse.lm.sft import SFTConfig, train_sft
from rlcourse.lm.tasks import ArithmeticTask, ReviewTask
from rlcourse.lm.tokenizer import build_tokenizer


def _new_model(config: SFTConfig, tokenizer) -> GPT2LMHeadModel:
    return init_model(
        tokenizer,
        seed=config.seed,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_positions=config.n_positions,
    )


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
    return save_model(
        model,
        Path(out_dir),
        tokenizer,
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
    return save_model(
        model,
        Path(out_dir),
        tokenizer,
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
