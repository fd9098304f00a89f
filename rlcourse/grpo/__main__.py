"""``python -m rlcourse.grpo``: GRPO on a shipped model from the command line, on one or many ranks (chapter 12).

One process (no process group: exactly ``train_grpo`` as in the notebooks)::

    python -m rlcourse.grpo --steps 4 --prompts-per-step 8 --group-size 4 --out runs/grpo

Two gloo ranks on the CPU, the same global batch (each rank samples 4 of the 8 prompts)::

    torchrun --standalone --nproc_per_node 2 -m rlcourse.grpo --steps 4 --prompts-per-step 8 --out runs/grpo2

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
from rlcourse.grpo.config import GRPOConfig
from rlcourse.grpo.loss import LOSS_TYPES
from rlcourse.grpo.trainer import train_grpo
from rlcourse.launch import add_common_args, check_out, rank_device, run_summary, save_run, step_line


def parser() -> argparse.ArgumentParser:
    """The command line's flags (``--help`` lists them with their defaults)."""
    p = argparse.ArgumentParser(
        prog="python -m rlcourse.grpo",
        description="GRPO on the shipped arithmetic model (chapter 08), data-parallel under torchrun (chapter 12).",
    )
    p.add_argument(
        "--model", default="arithmetic", help="shipped model name or model folder (default arithmetic)"
    )
    p.add_argument("--steps", type=int, default=4, help="optimiser steps (default 4)")
    p.add_argument(
        "--prompts-per-step", type=int, default=8,
        help="GLOBAL prompts per step, split evenly over the ranks (default 8)",
    )  # fmt: skip
    p.add_argument("--group-size", type=int, default=4, help="completions per prompt, G (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=5, help="completion length limit (default 5)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4, chapter 08)")
    p.add_argument(
        "--beta", type=float, default=0.04, help="weight of the k3 KL to the reference (default 0.04)"
    )
    p.add_argument(
        "--loss-type", choices=LOSS_TYPES, default="grpo", help="loss normalisation (default grpo)"
    )
    p.add_argument("--num-iterations", type=int, default=1, help="updates per sampled batch (default 1)")
    p.add_argument(
        "--no-scale-rewards", action="store_true", help="do not divide advantages by the group std (Dr. GRPO)"
    )
    p.add_argument(
        "--eval-every", type=int, default=0,
        help="greedy held-out accuracy every this many steps, on rank 0 (default 0 = never)",
    )  # fmt: skip
    p.add_argument("--n-eval", type=int, default=100, help="held-out prompts per evaluation (default 100)")
    add_common_args(p)
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse ``argv``, train, save on rank 0; return the summary written to ``history.json``."""
    from rlcourse.lm import ArithmeticTask, load_model

    p = parser()
    args = p.parse_args(argv)
    try:
        check_out(args.out)
        cfg = GRPOConfig(
            steps=args.steps, prompts_per_step=args.prompts_per_step, group_size=args.group_size,
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, lr=args.lr, beta=args.beta,
            loss_type=args.loss_type, num_iterations=args.num_iterations,
            scale_rewards=not args.no_scale_rewards, eval_every=args.eval_every, seed=args.seed,
        )  # fmt: skip
    except (ValueError, TypeError, FileExistsError) as e:
        p.error(str(e))  # exits with status 2 and the message
    created = not distributed.is_active()  # a caller that made the group tears it down itself
    rank, world_size = distributed.init_from_env(args.backend, args.threads)
    try:
        policy, tokenizer = load_model(args.model, rank_device())
        task = ArithmeticTask()

        def show(step: int, hist: dict) -> None:
            print(step_line(step, cfg.steps, hist, ("reward", "accuracy", "loss", "kl")), flush=True)

        hist = train_grpo(
            policy, tokenizer, task, cfg,
            eval_prompts=task.heldout_prompts[: args.n_eval] if args.eval_every else None,
            callback=None if args.quiet else show,
        )  # fmt: skip
        sampling = "per-prompt generators" if distributed.is_active() else "one generator"
        summary = run_summary(hist, cfg, args.model, torch.get_num_threads(), sampling)
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
