"""The RLHF-PPO trainer (chapter 07): the ten steps of :mod:`rlcourse.rlhf.steps`, ``total_batches`` times."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rlcourse.checks import TrainingError, call_user, interrupted
from rlcourse.lm.generate import Rollout
from rlcourse.progress import progress_bar
from rlcourse.rlhf.config import HISTORY_KEYS, RLHFConfig
from rlcourse.rlhf.steps import check_rewards, make_batch, ppo_epochs


def train_ppo(
    policy,
    reference,
    reward_model,
    critic,
    tokenizer,
    prompt_pool: Sequence[str],
    cfg: RLHFConfig | None = None,
    gold_fn: Callable[[Rollout], torch.Tensor] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
) -> dict[str, list]:
    """RLHF with PPO: ``cfg.total_batches`` iterations of the ten steps. Trains ``policy`` and ``critic`` in place.

    Args:
        policy: the actor, a causal LM (trained).
        reference: frozen copy of the initial policy (``rlcourse.lm.model.frozen_copy``).
        reward_model: a ``RewardModel`` (frozen; its score is the proxy reward), or a reward function
            ``rollout -> (B,)`` float tensor.
        critic: a ``ValueHeadModel`` (trained), e.g. :func:`rlcourse.rlhf.make_critic` of the policy.
        tokenizer: shared by all four models.
        prompt_pool: prompts to draw each batch from (with replacement, seeded by ``cfg.seed``).
        cfg: :class:`RLHFConfig`.
        gold_fn: optional ``rollout -> (B,)`` hidden gold reward (e.g. ``ReviewTask().rewards``), measured
            on the same samples, never used for training.
        progress: show a tqdm bar.
        callback: optional ``callback(step, history)``, called after every batch.

    Returns:
        history, a dict of equal-length lists with one entry per batch (what chapter 10 compares):
        ``"step"`` (batch index), ``"proxy_reward"`` (mean reward-model score of the batch's samples, before
        the eos penalty), ``"gold_reward"`` (mean gold reward, NaN without ``gold_fn``), ``"kl"`` (mean over
        samples of sum over tokens of log pi - log pi_ref, in nats, TRL's ``objective/kl``), ``"time"``
        (seconds since the start, cumulative), ``"policy_loss"``, ``"value_loss"``, ``"clipfrac"``,
        ``"approx_kl"``, ``"length"`` (mean completion tokens), ``"finished"`` (fraction that emitted
        ``<eos>``); plus ``"samples"``: the first 4 texts of every batch.

    Raises:
        rlcourse.checks.TrainingError: when anything fails mid-run (a reward function, ``gold_fn``, the
            callback, a NaN); its ``.history`` holds the completed batches. Ctrl-C (KeyboardInterrupt)
            returns the completed batches instead.
    """
    cfg = cfg or RLHFConfig()
    if not isinstance(cfg, RLHFConfig):
        raise TypeError(f"cfg must be an RLHFConfig, got {type(cfg).__name__}")
    if isinstance(prompt_pool, str) or len(prompt_pool) == 0:
        raise ValueError(
            f"prompt_pool is empty or not a list: pass a non-empty list of prompts (e.g. ReviewTask.prompts(256)), got {prompt_pool!r:.60}"
        )
    for name, fn in (("gold_fn", gold_fn), ("callback", callback)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function or None, got {type(fn).__name__}")
    device = next(policy.parameters()).device
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    cpu_gen = torch.Generator().manual_seed(cfg.seed + 1)
    for m in (reward_model, reference):
        if isinstance(m, torch.nn.Module):
            m.eval()
    params = [p for m in (policy, critic) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    hist: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    steps = progress_bar(range(cfg.total_batches), progress, f"PPO kl_coef={cfg.kl_coef:g}")
    t0 = time.perf_counter()
    step = 0
    try:
        for step in steps:
            prompts = [prompt_pool[i] for i in rng.integers(0, len(prompt_pool), cfg.batch_size)]
            batch = make_batch(
                policy, reference, reward_model, critic, tokenizer, prompts, cfg, gen
            )  # steps 1-4
            stats = ppo_epochs(policy, critic, optimizer, batch, cfg, cpu_gen)  # steps 5-10
            gold = float("nan")
            if gold_fn is not None:
                out = call_user(gold_fn, "gold_fn", batch.rollout)
                gold = check_rewards(out, batch.rollout, "gold_fn").mean().item()
            _record(hist, step, batch, stats, cfg, gold, time.perf_counter() - t0)
            if callback is not None:
                call_user(callback, "callback", step, hist)
    except KeyboardInterrupt:
        interrupted("train_ppo", len(hist["step"]))
        policy.eval()
        critic.eval()
        return hist
    except Exception as e:
        policy.eval()
        critic.eval()
        raise TrainingError("train_ppo", len(hist["step"]), hist, e) from e
    return hist


def _record(hist: dict, step: int, batch, stats: dict, cfg: RLHFConfig, gold: float, seconds: float) -> None:
    """Append one batch's entries to every list of ``hist`` (all lists stay the same length)."""
    raw = batch.scores
    if cfg.missing_eos_penalty is not None:
        raw = raw + cfg.missing_eos_penalty * (~batch.rollout.finished).float()
    row = {
        "step": step,
        "proxy_reward": raw.mean().item(),
        "gold_reward": gold,
        "kl": batch.kl.mean().item(),
        "time": seconds,
        **{k: stats[k] for k in ("policy_loss", "value_loss", "clipfrac", "approx_kl")},
        "length": batch.rollout.completion_lengths.float().mean().item(),
        "finished": batch.rollout.finished.float().mean().item(),
        "samples": batch.rollout.texts[:4],
    }
    for k in HISTORY_KEYS:
        hist[k].append(row[k])
