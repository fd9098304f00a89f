"""DPO on the tiny LM: config, batches of pairs, one step, the training loop (chapter 09, sections 3-4).

:class:`DPOConfig` checks every field when it is built; :func:`train_dpo` keeps the history of the
completed steps when anything fails mid-run (:class:`rlcourse.checks.TrainingError`) or Ctrl-C stops it.

Under a ``torch.distributed`` process group (``torchrun``, chapter 12) it runs data-parallel: every rank
draws the same global batch of pairs and trains on its block, each loss term scaled by the rank's share
of its global normaliser (pairs for DPO's mean, chosen tokens for the NLL), gradients summed over ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcourse import distributed
from rlcourse.checks import TrainingError, call_user, check_choice, check_int, check_number, interrupted
from rlcourse.dpo.data import pair_batch, pair_logps, sample_and_score, trim_padding
from rlcourse.dpo.loss import LOSS_TYPES, check_beta, chosen_nll, dpo_loss
from rlcourse.lm.logprobs import shift_mask
from rlcourse.progress import progress_bar


@dataclass
class DPOConfig:
    """Hyperparameters of DPO on the tiny LM (TRL's names in brackets).

    Every field is checked in ``__post_init__``: a bad value fails when the config is built, with a
    message naming the field, the value, the allowed range and a fix.
    """

    steps: int = 60
    """optimiser steps"""
    batch_size: int = 32
    """preference pairs per step, drawn from the pair set with replacement"""
    lr: float = 1e-4
    """Adam learning rate"""
    beta: float = 0.1
    """DPO's beta > 0: strength of the implicit KL regularisation (TRL: 0.1)"""
    loss_type: str = "sigmoid"
    """"sigmoid" (DPO), "ipo" or "hinge" (see dpo_loss)"""
    nll_weight: float = 0.0
    """weight >= 0 of the chosen answers' NLL added to the loss (TRL: loss_type=["sigmoid", "sft"]); ~1 keeps the
    tiny model grammatical"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip"""
    eval_every: int = 10
    """sample and score generations every this many steps (and after the last); 0 = never"""
    eval_samples: int = 64
    """completions sampled per evaluation (one per eval prompt, cycling)"""
    max_new_tokens: int = 48
    """completion length limit when sampling for evaluation"""
    temperature: float = 1.0
    """sampling temperature for evaluation (1.0: the policy itself, not a sharpened one)"""
    seed: int = 0
    """seeds the pair order and the evaluation samples"""

    def __post_init__(self) -> None:
        own = "DPOConfig"
        check_int("steps", self.steps, low=1, owner=own, fix="train for at least one step")
        check_int("batch_size", self.batch_size, low=1, owner=own, fix="use 16 or 32 pairs per step")
        check_number("lr", self.lr, low=0, low_open=True, owner=own, fix="use 1e-4 as chapter 09")
        check_beta(self.beta, owner=own)
        check_choice("loss_type", self.loss_type, LOSS_TYPES, owner=own)
        check_number(
            "nll_weight", self.nll_weight, low=0, owner=own, fix="0 turns the NLL term off; 1 is RPO's"
        )
        check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True, owner=own, fix="use 1.0")
        check_int("eval_every", self.eval_every, low=0, owner=own, fix="0 turns evaluation off")
        check_int("eval_samples", self.eval_samples, low=1, owner=own, fix="use 64")
        check_int("max_new_tokens", self.max_new_tokens, low=1, owner=own, fix="use 48")
        check_number("temperature", self.temperature, low=0, low_open=True, owner=own, fix="sample at 1.0")
        check_int("seed", self.seed, low=0, owner=own)


def dpo_step(
    policy, optimizer, batch: tuple[torch.Tensor, ...], ref_logps: torch.Tensor, cfg: DPOConfig
) -> dict:
    """One DPO update on a :func:`pair_batch` with precomputed reference log-probs ``(2B,)``.

    Returns floats: ``loss`` (total), ``dpo_loss``, ``nll``, ``chosen_logp`` / ``rejected_logp`` (mean summed
    log-probs under the policy), ``chosen_reward`` / ``rejected_reward`` (implicit rewards), ``reward_acc``
    (fraction with chosen reward > rejected), ``margin`` (mean ``beta * delta``, the implicit-reward gap),
    ``logratio_gap`` (mean ``delta`` = chosen log-ratio - rejected log-ratio, in nats), ``grad_norm``.
    Under a process group ``batch`` is this rank's block and every returned value is global (chapter 12).
    """
    ids, attn, comp = batch
    per_token, logps = pair_logps(policy, ids, attn, comp)
    B = ids.shape[0] // 2
    lengths = comp.sum(-1)
    dpo, cr, rr = dpo_loss(
        logps[:B],
        logps[B:],
        ref_logps[:B],
        ref_logps[B:],
        cfg.beta,
        cfg.loss_type,
        chosen_lengths=lengths[:B],
        rejected_lengths=lengths[B:],
    )
    loss = dpo
    nll = chosen_nll(per_token[:B], shift_mask(comp[:B]))
    if cfg.nll_weight:
        loss = loss + cfg.nll_weight * nll
    optimizer.zero_grad(set_to_none=True)
    if distributed.is_active():
        tokens = shift_mask(comp[:B]).sum().item()
        pair_share, token_share = (
            B / distributed.all_reduce_sum(B),
            tokens / distributed.all_reduce_sum(tokens),
        )
        (dpo * pair_share + cfg.nll_weight * nll * token_share).backward()
        distributed.all_reduce_grads(policy.parameters())
    else:
        loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm, foreach=True)
    optimizer.step()
    stats = {
        "loss": loss.item(),
        "dpo_loss": dpo.item(),
        "nll": nll.item(),
        "chosen_logp": logps[:B].mean().item(),
        "rejected_logp": logps[B:].mean().item(),
        "chosen_reward": cr.mean().item(),
        "rejected_reward": rr.mean().item(),
        "reward_acc": (cr > rr).float().mean().item(),
        "margin": (cr - rr).mean().item(),
        "logratio_gap": ((cr - rr) / cfg.beta).mean().item(),
        "grad_norm": float(grad_norm),
    }
    if distributed.is_active():
        stats.update(_global_stats(stats, B, tokens, cfg))
    return stats


def _global_stats(stats: dict, pairs: int, tokens: float, cfg: DPOConfig) -> dict:
    """Data parallel: the step's means over every rank's pairs (the NLL over every chosen token)."""
    keys = ("dpo_loss", "chosen_logp", "rejected_logp", "chosen_reward", "rejected_reward", "reward_acc")
    keys += ("margin", "logratio_gap")
    weights = dict.fromkeys(keys, pairs) | {"nll": tokens}
    out = distributed.weighted_means({k: stats[k] for k in weights}, weights)
    out["loss"] = out["dpo_loss"] + cfg.nll_weight * out["nll"] if cfg.nll_weight else out["dpo_loss"]
    return out


STEP_KEYS = [
    "step",
    "loss",
    "dpo_loss",
    "nll",
    "chosen_logp",
    "rejected_logp",
    "chosen_reward",
    "rejected_reward",
    "reward_acc",
    "margin",
    "logratio_gap",
    "grad_norm",
    "step_time",
    "time",
    "memory_mb",
]
EVAL_KEYS = ["eval_step", "gold_reward", "grammatical", "kl", "length", "samples"]


def _check_train_args(pairs, cfg, task, eval_prompts, callback) -> DPOConfig:
    cfg = DPOConfig() if cfg is None else cfg
    if not isinstance(cfg, DPOConfig):
        raise TypeError(f"cfg must be a rlcourse.dpo.DPOConfig, got {type(cfg).__name__}")
    if len(pairs) == 0:
        raise ValueError("no preference pairs: pass e.g. ReviewTask().preference_pairs(512)")
    if eval_prompts is not None:
        if task is None:
            raise ValueError(
                "eval_prompts needs a task with gold_score and is_grammatical (e.g. ReviewTask())"
            )
        if isinstance(eval_prompts, str) or len(eval_prompts) == 0:
            raise ValueError(
                f"eval_prompts must be a non-empty list of prompt strings, got {eval_prompts!r:.60}; "
                "e.g. ReviewTask().prompts(64)"
            )
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(step, history), got {callback!r}")
    return cfg


def train_dpo(
    policy,
    tokenizer,
    pairs: Sequence[dict],
    cfg: DPOConfig | None = None,
    ref_model=None,
    task=None,
    eval_prompts: Sequence[str] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
) -> dict[str, list]:
    """Train ``policy`` in place with DPO on preference ``pairs`` (e.g. ``ReviewTask().preference_pairs(n)``).

    Args:
        policy: a causal LM (e.g. ``load_model("reviews")[0]``), trained in place.
        pairs: dicts with ``prompt``, ``chosen``, ``rejected``.
        cfg: :class:`DPOConfig` (checked when built).
        ref_model: the frozen reference; default ``frozen_copy(policy)`` taken before training. Its log-probs
            of every pair are computed once, before training (TRL's ``precompute_ref_log_probs``).
        task, eval_prompts: for evaluation (a ``ReviewTask`` and prompts such as ``"the food was"``); sampled
            generations scored by :func:`sample_and_score` every ``cfg.eval_every`` steps.
        progress: show a tqdm bar.
        callback: ``callback(step, history)`` after every completed step (step counts from 1; ``history`` is
            the dict below, so far).

    Returns:
        history, a dict of lists (chapter 10 reads it). One entry per step: ``"step"``, ``"loss"``,
        ``"dpo_loss"``, ``"nll"``, ``"chosen_logp"``, ``"rejected_logp"``, ``"chosen_reward"``,
        ``"rejected_reward"``, ``"reward_acc"``, ``"margin"`` (``beta * delta``), ``"logratio_gap"``
        (``delta``), ``"grad_norm"``, ``"step_time"``, ``"time"`` (cumulative training seconds, evaluation
        excluded), ``"memory_mb"`` (state memory of policy + reference, ``rlcourse.grpo.state_memory_mb``).
        Evaluations (step 0 = before training): ``"eval_step"``, ``"gold_reward"``, ``"grammatical"``,
        ``"kl"`` (nats per sequence), ``"length"``, ``"samples"`` (the first 4 texts).

    Raises:
        :class:`rlcourse.checks.TrainingError` when anything fails mid-run (a NaN log-prob, the callback, an
        evaluation); its ``.history`` holds the completed steps and its message names the step. Ctrl-C
        (KeyboardInterrupt) returns the history of the completed steps.
    """
    from rlcourse.grpo import make_adam, state_memory_mb
    from rlcourse.lm.model import frozen_copy

    cfg = _check_train_args(pairs, cfg, task, eval_prompts, callback)
    device = next(policy.parameters()).device
    rank, world_size = distributed.world()
    data_parallel = distributed.is_active()
    if data_parallel:
        if cfg.batch_size % world_size:
            raise ValueError(
                f"DPOConfig.batch_size={cfg.batch_size} is not divisible by the number of ranks ({world_size}); "
                f"every rank must get the same share of pairs: use a multiple of {world_size}, e.g. "
                f"batch_size={world_size * max(1, cfg.batch_size // world_size)}"
            )
        distributed.broadcast_params(policy)  # every rank starts from rank 0's weights, as DDP does
        progress, callback = progress and rank == 0, callback if rank == 0 else None
    ref_model = ref_model if ref_model is not None else frozen_copy(policy)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    ids, attn, comp = pair_batch(tokenizer, pairs, device)  # all pairs, once
    n = len(pairs)
    with torch.no_grad():
        ref_all = torch.cat(
            [
                pair_logps(ref_model, ids[i : i + 256], attn[i : i + 256], comp[i : i + 256])[1]
                for i in range(0, 2 * n, 256)
            ]
        )
    optimizer = make_adam(policy.parameters(), cfg.lr, device)
    hist: dict[str, list] = {k: [] for k in STEP_KEYS + EVAL_KEYS}
    memory = state_memory_mb([policy], [ref_model])

    def evaluate(step: int) -> None:
        if eval_prompts is None or rank != 0:  # rank 0 alone; its sampler `gen` is not used for training
            return
        prompts = [eval_prompts[i % len(eval_prompts)] for i in range(cfg.eval_samples)]
        r = sample_and_score(
            policy, ref_model, tokenizer, prompts, task, cfg.max_new_tokens, cfg.temperature, gen
        )
        for key, value in {
            "gold_reward": "gold",
            "grammatical": "grammatical",
            "kl": "kl",
            "length": "length",
        }.items():
            hist[key].append(r[value])
        hist["eval_step"].append(step)
        hist["samples"].append(r["texts"][:4])

    policy.eval()  # dropout off while training, as TRL's disable_dropout=True (the course's models have none)
    elapsed = 0.0
    try:
        evaluate(0)
        for step in progress_bar(range(cfg.steps), progress, f"DPO beta={cfg.beta:g} nll={cfg.nll_weight:g}"):
            t0 = time.perf_counter()
            idx = torch.as_tensor(rng.integers(0, n, cfg.batch_size), device=device)
            if data_parallel:  # the same global batch on every rank; keep this rank's block
                idx = idx[rank * len(idx) // world_size : (rank + 1) * len(idx) // world_size]
            rows = torch.cat([idx, idx + n])
            batch = trim_padding((ids[rows], attn[rows], comp[rows]))
            row = dpo_step(policy, optimizer, batch, ref_all[rows], cfg)
            dt = time.perf_counter() - t0
            elapsed += dt
            row.update(step=step + 1, step_time=dt, time=elapsed, memory_mb=memory)
            for k in STEP_KEYS:
                hist[k].append(row[k])
            if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
                evaluate(step + 1)
            if callback is not None:
                call_user(callback, "callback", step + 1, hist)
    except KeyboardInterrupt:
        interrupted("train_dpo", len(hist["step"]))
    except Exception as e:  # noqa: BLE001 - re-raised with the history attached
        raise TrainingError("train_dpo", len(hist["step"]), hist, e) from e
    finally:
        policy.eval()
    return hist
