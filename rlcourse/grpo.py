"""GRPO: Group Relative Policy Optimization (chapter 08 derives it; chapter 10 compares it with PPO and DPO).

GRPO (DeepSeekMath, Shao et al. 2024) is PPO's clipped objective with the value model (critic,
价值模型) removed: for every prompt the policy samples a *group* of G completions, each completion is
scored by a reward function, and the advantage (优势) of completion i is its reward relative to its
own group, ``A_i = (r_i - mean(r_group)) / (std(r_group) + eps)``. Every token of completion i gets
the same ``A_i`` (outcome supervision). The KL divergence (KL 散度) to the frozen reference model
(参考模型) is a term of the *loss*, estimated per token with k3, not a penalty folded into the reward
as in chapter 07's PPO.

Conventions, and where they agree with TRL 1.16's ``GRPOTrainer`` (checked to 1e-5 in
``tests/test_trl_parity.py``):

- std uses Bessel's correction (N - 1 in the denominator), like TRL's ``nanstd``; Spinning Up and
  ``np.std`` use N. With G = 2 the two differ by a factor sqrt(2).
- eps = 1e-4 is added to the std (TRL), not 1e-8 (CleanRL's per-batch normalisation).
- ``scale=False`` is TRL's ``scale_rewards="none"`` (Dr. GRPO: no std division).
- "dr_grpo" divides by ``B * max_completion_length``. TRL uses its config value; ours defaults to the
  width T of the tensors, so pass ``max_completion_length`` when completions are padded to less.
- TRL divides the logits by the sampling temperature before computing log-probs; our trainer samples
  at ``temperature`` and scores with the same ``temperature`` too (see :class:`GRPOConfig`), so the
  policy being trained is the one that sampled.

Public API: :func:`group_advantages`, :func:`all_equal_fraction`, :func:`token_weights`,
:func:`per_token_grpo_loss`, :func:`grpo_loss`; the trainer :class:`GRPOConfig` / :func:`train_grpo`
(one step: :func:`grpo_step`; its history is documented in :func:`train_grpo`); and
:func:`state_memory_mb` (models' state memory, for the PPO comparison), :func:`make_adam`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcourse.lm.generate import Rollout, generate
from rlcourse.lm.kl import kl_k3
from rlcourse.lm.logprobs import shift_mask, token_logprobs
from rlcourse.progress import progress_bar

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo")


def _check_groups(rewards: torch.Tensor, group_size: int) -> None:
    if rewards.dim() != 1:
        raise ValueError(
            f"rewards must have shape (n_prompts * group_size,), got shape {tuple(rewards.shape)}"
        )
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if rewards.numel() == 0:
        raise ValueError("rewards is empty: sample at least one group of completions")
    if rewards.numel() % group_size != 0:
        raise ValueError(
            f"{rewards.numel()} rewards do not split into groups of {group_size}: "
            "rewards must hold n_prompts * group_size values, each prompt's completions contiguous"
        )


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """Advantage of each completion relative to its own group.

    Args:
        rewards: shape ``(n_prompts * group_size,)``; rows ``k*G .. k*G + G - 1`` are the G completions of
            prompt k (the order :func:`rlcourse.lm.generate.generate` returns with ``num_samples=G``).
        group_size: G, the number of completions per prompt.
        scale: divide by the group's std (+ eps). ``False`` gives Dr. GRPO's ``r - mean``.
        eps: added to the std, 1e-4 as in TRL.

    Returns:
        shape ``(n_prompts * group_size,)``: ``(r - mean_g) / (std_g + eps)`` with the std's N - 1
        denominator (Bessel's correction, TRL's convention), or ``r - mean_g`` when ``scale=False``.
        With ``group_size=1`` the std is undefined; it is taken as 0 (every advantage is 0).
    """
    _check_groups(rewards, group_size)
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        centred = centred / (std + eps)
    return centred.reshape(-1).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def all_equal_fraction(rewards: torch.Tensor, group_size: int, atol: float = 1e-6) -> float:
    """Fraction of groups whose rewards are all equal: their advantages are 0, so they give no gradient.

    rewards: ``(n_prompts * group_size,)``, groups contiguous. Returns a float in [0, 1]. (TRL logs the
    same quantity as ``frac_reward_zero_std``.)
    """
    _check_groups(rewards, group_size)
    grouped = rewards.float().view(-1, group_size)
    spread = grouped.max(dim=1).values - grouped.min(dim=1).values
    return (spread <= atol).float().mean().item()


def _check_token_tensors(completion_mask: torch.Tensor, **tensors: torch.Tensor) -> None:
    if completion_mask.dim() != 2:
        raise ValueError(f"completion_mask must have shape (B, T), got shape {tuple(completion_mask.shape)}")
    if completion_mask.numel() == 0:
        raise ValueError("completion_mask is empty: the batch needs at least one completion token")
    for name, t in tensors.items():
        if t is not None and t.shape != completion_mask.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but completion_mask has shape {tuple(completion_mask.shape)}; "
                "all per-token tensors must be (B, T) and aligned with the completion mask"
            )


def token_weights(
    completion_mask: torch.Tensor, loss_type: str = "grpo", max_completion_length: int | None = None
) -> torch.Tensor:
    """The weight each token's loss gets in the batch's scalar loss, for each normalisation.

    ``loss = sum_{i,t} w_{i,t} * per_token_loss_{i,t}``. For a completion of length L_i in a batch of B:

    - ``"grpo"``: w = 1 / (B * L_i). Each *sequence* weighs 1/B, so a token of a long completion weighs
      less than a token of a short one (Dr. GRPO's length bias: a long wrong answer is penalised less
      per token).
    - ``"bnpo"``: w = 1 / sum_i L_i, the same for every token of the batch.
    - ``"dr_grpo"``: w = 1 / (B * T_max), a constant that does not depend on the batch's lengths.

    completion_mask: ``(B, T)`` with 1 on completion tokens. Returns ``(B, T)`` weights (0 off the mask).
    """
    _check_token_tensors(completion_mask)
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    mask = completion_mask.float()
    B, T = mask.shape
    if loss_type == "grpo":
        return mask / (B * mask.sum(dim=1, keepdim=True).clamp(min=1.0))
    if loss_type == "bnpo":
        return mask / mask.sum().clamp(min=1.0)
    T_max = T if max_completion_length is None else max_completion_length
    if T_max < T:
        raise ValueError(f"max_completion_length={T_max} is shorter than the tensors' width T={T}")
    return mask / (B * T_max)


def per_token_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    clip_eps_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-token GRPO loss before masking and normalisation, and the per-token k3 KL.

    ``-min(rho * A, clip(rho, 1 - eps, 1 + eps_high) * A) + beta * k3`` with ``rho = exp(logp - old_logp)``
    and ``k3 = exp(ref - logp) - (ref - logp) - 1`` (never negative).
    logp, old_logp, ref_logp: ``(B, T)``; advantages ``(B,)``. Returns two ``(B, T)`` tensors.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(1)
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + eps_high) * adv)
    loss = -surrogate
    if ref_logp is None or beta == 0.0:
        kl = torch.zeros_like(logp)
    else:
        kl = kl_k3(logp, ref_logp)
        loss = loss + beta * kl
    return loss, kl


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    clip_eps_high: float | None = None,
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """GRPO's clipped objective with a k3 KL term, reduced to a scalar.

    Args:
        logp: ``(B, T)`` log-probs of the sampled tokens under the policy being trained (with grad).
        old_logp: ``(B, T)`` the same under the policy that sampled (no grad). With one update per batch
            it equals ``logp.detach()``: the ratio is 1 and the loss value starts near 0 although its
            gradient is not zero (trl #2703).
        ref_logp: ``(B, T)`` under the frozen reference model, or None when ``beta == 0``.
        advantages: ``(B,)``, one per completion (:func:`group_advantages`).
        completion_mask: ``(B, T)``, 1 on the completion's tokens (through ``<eos>``), 0 on padding.
        clip_eps: the clip range, ratio clipped to ``[1 - clip_eps, 1 + clip_eps_high]``.
        beta: weight of the k3 KL to the reference (0.04 in DeepSeekMath; TRL >= 0.19 defaults to 0).
        loss_type: ``"grpo"`` mean over sequences of each sequence's token mean; ``"bnpo"`` masked token
            sum / number of completion tokens; ``"dr_grpo"`` masked token sum / (B * T). See
            :func:`token_weights`.
        clip_eps_high: upper clip range (DAPO's "clip higher"); defaults to ``clip_eps``.
        max_completion_length: the T of ``"dr_grpo"``'s ``B * T`` (TRL uses its config value); defaults
            to the tensors' width.

    Returns:
        a scalar tensor.
    """
    _check_token_tensors(completion_mask, logp=logp, old_logp=old_logp, ref_logp=ref_logp)
    if advantages.shape != (completion_mask.shape[0],):
        raise ValueError(
            f"advantages must have shape (B,) = ({completion_mask.shape[0]},), got {tuple(advantages.shape)}"
        )
    if beta != 0.0 and ref_logp is None:
        raise ValueError("beta != 0 needs ref_logp (the reference model's log-probs); pass it or set beta=0")
    weights = token_weights(completion_mask, loss_type, max_completion_length).to(logp.dtype)
    per_token, _ = per_token_grpo_loss(logp, old_logp, ref_logp, advantages, clip_eps, beta, clip_eps_high)
    per_token = torch.where(completion_mask.bool(), per_token, torch.zeros_like(per_token))
    return (per_token * weights).sum()


# ------------------------------------------------------------------------------------------- trainer


@dataclass
class GRPOConfig:
    """Hyperparameters of GRPO on the tiny LM (DeepSeekMath / TRL names in brackets)."""

    steps: int = 60
    """optimiser steps; each samples a fresh batch of prompts"""
    prompts_per_step: int = 16
    """distinct prompts per step (TRL: per_device_train_batch_size / num_generations)"""
    group_size: int = 8
    """G, completions sampled per prompt [num_generations]"""
    max_new_tokens: int = 5
    """the completion's length limit in tokens [max_completion_length]"""
    temperature: float = 1.0
    """sampling temperature; the log-probs use the same temperature (TRL's convention)"""
    lr: float = 3e-4
    """Adam learning rate (chapter 08 runs 1e-4 on the shipped arithmetic model; 1e-3 collapsed it)"""
    warmup_steps: int = 0
    """linear learning-rate warm-up over the first steps (Adam's first steps are otherwise full-size)"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip"""
    beta: float = 0.04
    """weight of the k3 KL to the reference in the loss (DeepSeekMath: 0.04; TRL >= 0.19: 0)"""
    clip_eps: float = 0.2
    """ratio clip [epsilon]"""
    num_iterations: int = 1
    """gradient steps on each sampled batch (DeepSeekMath's mu; with 1 the ratio is exactly 1)"""
    loss_type: str = "grpo"
    """normalisation: "grpo", "bnpo" or "dr_grpo" (see token_weights)"""
    scale_rewards: bool = True
    """divide advantages by the group std (False: Dr. GRPO)"""
    eval_every: int = 10
    """evaluate held-out accuracy every this many steps (and after the last); 0 = never"""
    seed: int = 0
    """seeds prompt choice and sampling"""


def state_memory_mb(trained: Sequence[torch.nn.Module] = (), frozen: Sequence[torch.nn.Module] = ()) -> float:
    """Memory of the models' state in MB: trained models x4 (weights, gradients, Adam's two moments), frozen x1.

    Activations are not counted (they depend on batch and sequence length). This is how chapter 08
    compares PPO-for-RLHF (policy + critic trained; reference + reward model frozen) with GRPO
    (policy trained; reference frozen).
    """

    def nbytes(m: torch.nn.Module) -> int:
        seen, total = set(), 0
        for p in m.parameters():
            if p.data_ptr() not in seen:  # tied weights once
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
        return total

    return (4 * sum(nbytes(m) for m in trained) + sum(nbytes(m) for m in frozen)) / 2**20


def make_adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with torch's fused kernel where it exists (CPU and CUDA; ~7% faster per step here), plain elsewhere."""
    params = list(params)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.Adam(params, lr=lr)


def grpo_step(
    policy,
    ref_model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    prompts: Sequence[str],
    reward_fn: Callable[[Rollout], torch.Tensor],
    cfg: GRPOConfig,
    generator: torch.Generator | None = None,
) -> dict:
    """One GRPO step: sample G completions per prompt, score, group advantages, ``num_iterations`` updates.

    Args:
        policy: the causal LM being trained (策略模型); ref_model: its frozen copy (参考模型) or None if
            ``cfg.beta == 0``.
        prompts: ``n_prompts`` prompt strings; reward_fn: ``Rollout -> (n_prompts * G,)`` rewards.
        generator: a ``torch.Generator`` on the policy's device for reproducible sampling.

    Returns:
        a dict of floats: ``reward`` (mean), ``frac_all_equal``, ``kl`` (masked token mean of k3, TRL's
        ``kl``), ``kl_seq`` (mean over completions of the summed ``logp - ref_logp``, the PPO chapter's
        ``kl``), ``loss``, ``clipfrac``, ``length`` (mean completion tokens), ``grad_norm``; and ``rollout``
        / ``rewards`` for inspection.
    """
    G = cfg.group_size
    rollout = generate(
        policy,
        tokenizer,
        list(prompts),
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        num_samples=G,
        generator=generator,
    )
    rewards = reward_fn(rollout).float()
    advantages = group_advantages(rewards, G, scale=cfg.scale_rewards)
    ids, attn = rollout.input_ids, rollout.attention_mask
    mask = shift_mask(rollout.completion_mask)  # (B, T-1), aligned with token_logprobs
    with torch.no_grad():
        ref_logp = token_logprobs(ref_model, ids, attn, cfg.temperature) if cfg.beta != 0 else None
        old_logp = token_logprobs(policy, ids, attn, cfg.temperature) if cfg.num_iterations > 1 else None
    for _ in range(cfg.num_iterations):
        logp = token_logprobs(policy, ids, attn, cfg.temperature)
        old = logp.detach() if old_logp is None else old_logp
        loss = grpo_loss(logp, old, ref_logp, advantages, mask, cfg.clip_eps, cfg.beta, cfg.loss_type)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm, foreach=True)
        optimizer.step()
    with torch.no_grad():
        m = mask.float()
        ratio = torch.exp(logp.detach() - old)
        clipped = ((ratio - 1).abs() > cfg.clip_eps).float()
        stats = {
            "reward": rewards.mean().item(),
            "frac_all_equal": all_equal_fraction(rewards, G),
            "loss": loss.item(),
            "clipfrac": ((clipped * m).sum() / m.sum()).item(),
            "length": rollout.completion_lengths.float().mean().item(),
            "grad_norm": float(grad_norm),
            "kl": float("nan"),
            "kl_seq": float("nan"),
        }
        if ref_logp is not None:
            lp = logp.detach()
            stats["kl"] = ((kl_k3(lp, ref_logp) * m).sum() / m.sum()).item()
            stats["kl_seq"] = ((lp - ref_logp) * m).sum(-1).mean().item()
    stats["rollout"], stats["rewards"] = rollout, rewards
    return stats


def train_grpo(
    policy,
    tokenizer,
    task,
    cfg: GRPOConfig | None = None,
    ref_model=None,
    eval_prompts: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, list]:
    """Train ``policy`` in place with GRPO on ``task`` (e.g. :class:`rlcourse.lm.tasks.ArithmeticTask`).

    Args:
        policy: a causal LM (e.g. ``load_model("arithmetic")[0]``), trained in place.
        tokenizer: its tokenizer.
        task: has ``sample_prompts(n, rng)`` and ``rewards(rollout) -> (B,)``; for evaluation also
            ``accuracy(model, tokenizer, prompts)`` (greedy).
        cfg: :class:`GRPOConfig`.
        ref_model: the frozen reference; default ``frozen_copy(policy)`` taken before training.
        eval_prompts: held-out prompts for ``accuracy`` every ``cfg.eval_every`` steps (None: no evaluation).
        progress: show a tqdm bar.

    Returns:
        history, a dict of lists (chapter 10 reads it). One entry per step: ``"step"``, ``"reward"`` (mean
        rule-based reward of the step's samples), ``"accuracy"`` (fraction of the step's samples with a
        correct answer, when ``task`` has ``correct``), ``"frac_all_equal"`` (groups with zero advantage),
        ``"kl"`` (token mean of k3), ``"kl_seq"`` (sequence KL in nats, as chapter 07's ``"kl"``),
        ``"loss"``, ``"clipfrac"``, ``"length"``, ``"grad_norm"``, ``"step_time"`` (seconds of this step),
        ``"time"`` (cumulative training seconds, evaluation excluded), ``"memory_mb"`` (state memory of
        policy + reference, :func:`state_memory_mb`; on CUDA also ``"cuda_peak_mb"``, the step's peak
        allocation). Evaluations: ``"eval_step"`` (steps done when measured, starting with 0 = before
        training) and ``"eval_accuracy"`` (greedy held-out accuracy).
    """
    from rlcourse.lm.model import frozen_copy

    cfg = cfg or GRPOConfig()
    if cfg.loss_type not in LOSS_TYPES:
        raise ValueError(f"cfg.loss_type must be one of {LOSS_TYPES}, got {cfg.loss_type!r}")
    if cfg.group_size < 2:
        raise ValueError(
            f"cfg.group_size must be >= 2 (a group of one has no baseline), got {cfg.group_size}"
        )
    device = next(policy.parameters()).device
    if ref_model is None and cfg.beta != 0:
        ref_model = frozen_copy(policy)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = make_adam(policy.parameters(), cfg.lr, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (cfg.warmup_steps + 1))
    )
    policy.eval()  # dropout off while training, as TRL's disable_dropout=True (the course's models have none)
    keys = [
        "step",
        "reward",
        "accuracy",
        "frac_all_equal",
        "kl",
        "kl_seq",
        "loss",
        "clipfrac",
        "length",
        "grad_norm",
        "step_time",
        "time",
        "memory_mb",
        "eval_step",
        "eval_accuracy",
    ]
    hist: dict[str, list] = {k: [] for k in keys}
    if device.type == "cuda":
        hist["cuda_peak_mb"] = []
    memory = state_memory_mb([policy], [ref_model] if ref_model is not None else [])

    def evaluate(step: int) -> None:
        if eval_prompts is not None:
            hist["eval_step"].append(step)
            hist["eval_accuracy"].append(task.accuracy(policy, tokenizer, list(eval_prompts)))

    evaluate(0)
    steps = progress_bar(range(cfg.steps), progress, f"GRPO ({cfg.loss_type})")
    elapsed = 0.0
    for step in steps:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        prompts = task.sample_prompts(cfg.prompts_per_step, rng)
        stats = grpo_step(policy, ref_model, tokenizer, optimizer, prompts, task.rewards, cfg, gen)
        scheduler.step()
        dt = time.perf_counter() - t0
        elapsed += dt
        hist["step"].append(step + 1)
        for k in ("reward", "frac_all_equal", "kl", "kl_seq", "loss", "clipfrac", "length", "grad_norm"):
            hist[k].append(stats[k])
        correct = getattr(task, "correct", None)
        hist["accuracy"].append(correct(stats["rollout"]).mean().item() if correct else float("nan"))
        hist["step_time"].append(dt)
        hist["time"].append(elapsed)
        hist["memory_mb"].append(memory)
        if device.type == "cuda":
            hist["cuda_peak_mb"].append(torch.cuda.max_memory_allocated(device) / 2**20)
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            evaluate(step + 1)
    policy.eval()
    return hist
