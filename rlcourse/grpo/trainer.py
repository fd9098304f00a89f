"""``train_grpo``: GRPO (and its chapter-11 variants) on a task, logging every step, never losing them (chapter 08).

Under a ``torch.distributed`` process group (``torchrun``, chapter 12) it runs data-parallel: every rank
draws the same global prompts and trains on its block (:mod:`rlcourse.grpo.parallel`); rank 0 alone
evaluates, shows progress and calls the callback. Without one, nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rlcourse import distributed
from rlcourse.checks import TrainingError, call_user, interrupted
from rlcourse.grpo.config import GRPOConfig
from rlcourse.grpo.parallel import check_data_parallel, prompt_seeds
from rlcourse.grpo.step import grpo_step, make_adam, state_memory_mb
from rlcourse.progress import progress_bar

STEP_KEYS = (
    "reward", "frac_all_equal", "kl", "kl_seq", "entropy", "loss", "clipfrac", "clip_ratio_region", "length",
    "frac_truncated", "grad_norm", "groups_generated", "groups_kept", "sample_rounds",
)  # fmt: skip
HISTORY_KEYS = (
    "step", *STEP_KEYS, "accuracy", "length_correct", "length_wrong", "step_time", "time", "memory_mb",
    "eval_step", "eval_accuracy",
)  # fmt: skip


def _check_task(task) -> None:
    for name in ("sample_prompts", "rewards"):
        if not callable(getattr(task, name, None)):
            raise TypeError(
                f"task must have a method {name}() (sample_prompts(n, rng) -> prompts, rewards(rollout) -> (B*G,) "
                f"float tensor), e.g. rlcourse.lm.tasks.ArithmeticTask(); got {type(task).__name__}"
            )


def _lengths_by_correctness(task, stats: dict) -> tuple[float, float]:
    correct = getattr(task, "correct", None)
    if correct is None:
        return float("nan"), float("nan")
    ok = call_user(correct, "task.correct", stats["rollout"]).bool()
    n = stats["rollout"].completion_lengths.float()
    return (
        n[ok].mean().item() if ok.any() else float("nan"),
        n[~ok].mean().item() if (~ok).any() else float("nan"),
    )


def _global_correctness(task, stats: dict) -> tuple[float, float, float]:
    """Data parallel: accuracy and mean lengths of right / wrong answers over every rank's rollout."""
    correct = getattr(task, "correct", None)
    if correct is None:
        return float("nan"), float("nan"), float("nan")
    ok = call_user(correct, "task.correct", stats["rollout"]).bool()
    n = stats["rollout"].completion_lengths.float()
    local = torch.tensor([ok.sum(), n[ok].sum(), (~ok).sum(), n[~ok].sum()], dtype=torch.float64)
    n_ok, len_ok, n_bad, len_bad = distributed.all_reduce_sum(local).tolist()
    nan = float("nan")
    acc = n_ok / (n_ok + n_bad) if n_ok + n_bad > 0 else nan
    return acc, len_ok / n_ok if n_ok else nan, len_bad / n_bad if n_bad else nan


def train_grpo(
    policy,
    tokenizer,
    task,
    cfg: GRPOConfig | None = None,
    ref_model=None,
    eval_prompts: Sequence[str] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
) -> dict[str, list]:
    """Train ``policy`` in place with GRPO on ``task`` (e.g. :class:`rlcourse.lm.tasks.ArithmeticTask`).

    Args:
        policy: a causal LM (e.g. ``load_model("arithmetic")[0]``), trained in place.
        tokenizer: its tokenizer.
        task: has ``sample_prompts(n, rng)`` and ``rewards(rollout) -> (B*G,)`` float; for evaluation also
            ``accuracy(model, tokenizer, prompts)`` (greedy); optionally ``correct(rollout) -> (B*G,)``.
        cfg: :class:`GRPOConfig` (checked when built).
        ref_model: the frozen reference; default ``frozen_copy(policy)`` taken before training when
            ``cfg.beta != 0``. Pass one with ``beta == 0`` to have the KL reported anyway.
        eval_prompts: held-out prompts for ``accuracy`` every ``cfg.eval_every`` steps (None: no evaluation).
        progress: show a tqdm bar.
        callback: ``callback(step, history)`` after every completed step (step counts from 1).

    Returns:
        history, a dict of lists (chapters 10 and 11 read it). One entry per step: ``"step"``, ``"reward"``
        (mean reward of the batch trained on), ``"accuracy"`` (fraction of it answered correctly, when ``task``
        has ``correct``), ``"frac_all_equal"`` (of all groups generated), ``"kl"`` (token mean of k3; NaN
        without a reference), ``"kl_seq"`` (sequence KL in nats, as chapter 07's ``"kl"``), ``"entropy"``
        (token mean), ``"loss"``, ``"clipfrac"`` (``|ratio - 1| > clip_eps``), ``"clip_ratio_region"`` (TRL's
        ``clip_ratio/region_mean``), ``"length"``, ``"length_correct"`` / ``"length_wrong"``
        (mean completion tokens of right / wrong answers), ``"frac_truncated"``, ``"grad_norm"``,
        ``"groups_generated"`` / ``"groups_kept"`` / ``"sample_rounds"`` (dynamic sampling's bill),
        ``"step_time"`` (seconds), ``"time"`` (cumulative training seconds, evaluation excluded),
        ``"memory_mb"`` (:func:`state_memory_mb` of policy + reference; on CUDA also ``"cuda_peak_mb"``).
        Evaluations: ``"eval_step"`` (0 = before training) and ``"eval_accuracy"`` (greedy, held out).

    Data parallel (chapter 12): when a process group is initialised, every rank calls ``train_grpo`` with
    the same arguments; ``cfg.prompts_per_step`` is the GLOBAL batch (divisible by the number of ranks).
    Each prompt's group is sampled with its own generator (:func:`rlcourse.grpo.parallel.prompt_seeds`), so
    the run equals a 1-rank run of the same batch; the logged step statistics are global. Only rank 0
    evaluates, shows progress and calls ``callback``; its history holds the evaluations.

    Raises:
        :class:`rlcourse.checks.TrainingError` when anything fails mid-run (a reward function, a callback,
        a reward of the wrong shape); its ``.history`` holds the completed steps and its message names the
        step and the function. Ctrl-C (KeyboardInterrupt) returns the history of the completed steps.
        ``ValueError`` before training when a data-parallel run cannot be exact (indivisible batch,
        dynamic sampling).
    """
    from rlcourse.lm.model import frozen_copy

    cfg = GRPOConfig() if cfg is None else cfg
    if not isinstance(cfg, GRPOConfig):
        raise TypeError(f"cfg must be a rlcourse.grpo.GRPOConfig, got {type(cfg).__name__}")
    _check_task(task)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(step, history), got {callback!r}")
    device = next(policy.parameters()).device
    rank, world_size = distributed.world()
    data_parallel = distributed.is_active()
    if data_parallel:
        check_data_parallel(cfg, world_size)
        distributed.broadcast_params(policy)  # every rank starts from rank 0's weights, as DDP does
        progress, callback = progress and rank == 0, callback if rank == 0 else None
    if ref_model is None and cfg.beta != 0:
        ref_model = frozen_copy(policy)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = make_adam(policy.parameters(), cfg.lr, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (cfg.warmup_steps + 1))
    )
    policy.eval()  # dropout off while training, as TRL's disable_dropout=True (the course's models have none)
    hist: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    if device.type == "cuda":
        hist["cuda_peak_mb"] = []
    memory = state_memory_mb([policy], [ref_model] if ref_model is not None else [])

    def evaluate(step: int) -> None:
        if eval_prompts is not None and rank == 0:  # greedy: touches neither rng nor the samplers
            acc = call_user(task.accuracy, "task.accuracy", policy, tokenizer, list(eval_prompts))
            hist["eval_step"].append(step)
            hist["eval_accuracy"].append(acc)

    def sample_prompts(n: int) -> list[str]:
        return task.sample_prompts(n, rng)

    elapsed, step = 0.0, 0
    try:
        evaluate(0)
        for step in progress_bar(range(cfg.steps), progress, f"GRPO ({cfg.loss_type})"):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            prompts = call_user(task.sample_prompts, "task.sample_prompts", cfg.prompts_per_step, rng)
            seeds = None
            if data_parallel:  # the same global prompts on every rank; keep this rank's block
                seeds = distributed.shard(prompt_seeds(cfg.seed, step, len(prompts)), rank, world_size)
                prompts = distributed.shard(prompts, rank, world_size, "prompts_per_step")
            stats = grpo_step(
                policy, ref_model, tokenizer, optimizer, prompts, task.rewards, cfg, gen,
                sample_prompts=sample_prompts, call=call_user, seeds=seeds,
            )  # fmt: skip
            if not np.isnan(stats["grad_norm"]):  # no update when every completion was masked out
                scheduler.step()
            dt = time.perf_counter() - t0
            correct = getattr(task, "correct", None)
            if data_parallel:
                acc, len_ok, len_bad = _global_correctness(task, stats)
            else:
                acc = (
                    call_user(correct, "task.correct", stats["rollout"]).mean().item()
                    if correct
                    else float("nan")
                )
                len_ok, len_bad = _lengths_by_correctness(task, stats)
            elapsed += dt
            hist["step"].append(step + 1)
            for k in STEP_KEYS:
                hist[k].append(stats[k])
            hist["accuracy"].append(acc)
            hist["length_correct"].append(len_ok)
            hist["length_wrong"].append(len_bad)
            hist["step_time"].append(dt)
            hist["time"].append(elapsed)
            hist["memory_mb"].append(memory)
            if device.type == "cuda":
                hist["cuda_peak_mb"].append(torch.cuda.max_memory_allocated(device) / 2**20)
            if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
                evaluate(step + 1)
            if callback is not None:
                call_user(callback, "callback", step + 1, hist)
    except KeyboardInterrupt:
        interrupted("train_grpo", len(hist["step"]))
    except Exception as e:  # noqa: BLE001 - re-raised with the history attached
        raise TrainingError("train_grpo", len(hist["step"]), hist, e) from e
    finally:
        policy.eval()
    return hist
