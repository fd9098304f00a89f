"""``python -m rlcourse.dpo``: DPO on a shipped model from the command line, on one or many ranks (chapter 12).

One process (no process group: exactly ``train_dpo`` as in the notebooks)::

    python -m rlcourse.dpo --steps 4 --batch-size 8 --out runs/dpo

Two gloo ranks on the CPU, the same global batch (each rank trains on 4 of the 8 pairs)::

    torchrun --standalone --nproc_per_node 2 -m rlcourse.dpo --steps 4 --batch-size 8 --out runs/dpo2

(``python -m torch.distributed.run`` is the same launcher.) ``accelerate launch --cpu --num_processes 2``
starts only ONE process on a CPU-only machine (accelerate issue #2741); use torchrun there.
Rank 0 prints a line per step and writes ``OUT/model/`` and ``OUT/history.json`` (see
:mod:`rlcourse.launch`), including every rank's weight digest: the proof that the ranks agree.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from rlcourse import distributed
from rlcourse.dpo.loss import LOSS_TYPES
from rlcourse.dpo.trainer import DPOConfig, train_dpo
from rlcourse.launch import add_common_args, check_out, rank_device, run_summary, save_run, step_line


def parser() -> argparse.ArgumentParser:
    """The command line's flags (``--help`` lists them with their defaults)."""
    p = argparse.ArgumentParser(
        prog="python -m rlcourse.dpo",
        description="DPO on the shipped reviews model (chapter 09), data-parallel under torchrun (chapter 12).",
    )
    p.add_argument("--model", default="reviews", help="shipped model name or model folder (default reviews)")
    p.add_argument(
        "--pairs", type=int, default=256,
        help="preference pairs, ReviewTask().preference_pairs(n, seed=SEED) (default 256)",
    )  # fmt: skip
    p.add_argument("--steps", type=int, default=4, help="optimiser steps (default 4)")
    p.add_argument(
        "--batch-size", type=int, default=8,
        help="GLOBAL pairs per step, split evenly over the ranks (default 8)",
    )  # fmt: skip
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4, chapter 09)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO's beta (default 0.1)")
    p.add_argument("--loss-type", choices=LOSS_TYPES, default="sigmoid", help="DPO loss (default sigmoid)")
    p.add_argument(
        "--nll-weight", type=float, default=0.0, help="weight of the chosen answers' NLL (default 0)"
    )
    p.add_argument(
        "--eval-every", type=int, default=0,
        help="sample and score generations every this many steps, on rank 0 (default 0 = never)",
    )  # fmt: skip
    p.add_argument("--eval-samples", type=int, default=32, help="completions per evaluation (default 32)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="evaluation completion length (default 48)")
    add_common_args(p)
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse ``argv``, train, save on rank 0; return the summary written to ``history.json``."""
    from rlcourse.lm import ReviewTask, load_model

    p = parser()
    args = p.parse_args(argv)
    try:
        check_out(args.out)
        if args.pairs < 1:
            raise ValueError(f"--pairs must be at least 1, got {args.pairs}; e.g. --pairs 256")
        cfg = DPOConfig(
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, beta=args.beta, loss_type=args.loss_type,
            nll_weight=args.nll_weight, eval_every=args.eval_every, eval_samples=args.eval_samples,
            max_new_tokens=args.max_new_tokens, seed=args.seed,
        )  # fmt: skip
    except (ValueError, TypeError, FileExistsError) as e:
        p.error(str(e))  # exits with status 2 and the message
    created = not distributed.is_active()  # a caller that made the group tears it down itself
    rank, world_size = distributed.init_from_env(args.backend, args.threads)
    try:
        policy, tokenizer = load_model(args.model, rank_device())
        task = ReviewTask()
        pairs = task.preference_pairs(args.pairs, seed=args.seed)

        def show(step: int, hist: dict) -> None:
            print(step_line(step, cfg.steps, hist, ("loss", "reward_acc", "margin")), flush=True)

        hist = train_dpo(
            policy, tokenizer, pairs, cfg, task=task,
            eval_prompts=task.prompts(cfg.eval_samples, seed=args.seed + 1) if args.eval_every else None,
            callback=None if args.quiet else show,
        )  # fmt: skip
        summary = run_summary(hist, cfg, args.model, torch.get_num_threads(), "no sampling in training")
        summary["weights"] = distributed.weights_report(policy)
        if rank == 0:
            save_run(args.out, policy, tokenizer, summary)
            if not args.quiet:
                w = summary["weights"]
                print(
                    f"{world_size} rank(s): identical weights {w['identical']}, max |diff| to rank 0 "
                    f"{max(w['max_abs_diff']):.3g}; mean step {summary['mean_step_time']:.3f}s; saved {args.out}"
                )
        return summary
    finally:
        if created:
            distributed.teardown()  # some runs abort at exit when the process group is left alive


if __name__ == "__main__":
    main()
