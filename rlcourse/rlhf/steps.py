"""The ten steps of RLHF-PPO that call models (chapter 07): sample, score, V_old, ratio, update, epochs.

Each step is one function, so that notebook 07 can run them one cell at a time; the tensor maths they
use lives in :mod:`rlcourse.rlhf.loss` (data flows one way: steps -> loss and ``rlcourse.lm``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcourse.checks import call_user, check_finite
from rlcourse.lm.generate import Rollout, generate
from rlcourse.lm.logprobs import masked_mean, shift_mask, token_logprobs
from rlcourse.lm.model import ValueHeadModel
from rlcourse.ppo import approx_kl
from rlcourse.rlhf.config import RLHFConfig
from rlcourse.rlhf.loss import masked_whiten, per_token_rewards, ppo_policy_loss, ppo_value_loss, token_gae

RewardFn = Callable[[Rollout], torch.Tensor]
"""A reward function's contract: ``fn(rollout) -> (B,)`` float tensor, one reward per row of the rollout."""


def check_rewards(out, rollout: Rollout, role: str = "reward function") -> torch.Tensor:
    """Validate what a reward function returned: a float tensor of shape ``(B,)`` with finite values.

    Integer tensors are converted to float. Anything else raises, stating the contract and what came back.
    """
    B = rollout.input_ids.shape[0]
    contract = f"the {role} must return a torch.Tensor of shape ({B},) (one float per row of the rollout)"
    if not isinstance(out, torch.Tensor):
        hint = "; wrap it in torch.tensor(..., dtype=torch.float32)" if isinstance(out, (list, tuple)) else ""
        length = f" of length {len(out)}" if hasattr(out, "__len__") else ""
        raise TypeError(f"{contract}, got a {type(out).__name__}{length}{hint}")
    if out.shape != (B,):
        raise ValueError(f"{contract}, got shape {tuple(out.shape)}")
    if out.dtype == torch.bool or out.is_complex():
        raise TypeError(f"{contract}, got dtype {out.dtype}; return real numbers, e.g. out.float()")
    out = out.float()
    check_finite(f"rewards returned by the {role}", out)
    return out.to(rollout.input_ids.device)


def sample_completions(policy, tokenizer, prompts: Sequence[str], cfg: RLHFConfig, generator=None) -> Rollout:
    """Step 1: sample one completion per prompt with the actor. Returns a Rollout with ``(B, T)`` tensors."""
    return generate(
        policy,
        tokenizer,
        list(prompts),
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        generator=generator,
    )


@torch.no_grad()
def rollout_logprobs(model, rollout: Rollout, temperature: float) -> torch.Tensor:
    """Log-probs of the sampled tokens under ``model`` (policy or reference), no gradient, ``(B, T-1)``."""
    return token_logprobs(model, rollout.input_ids, rollout.attention_mask, temperature)


@torch.no_grad()
def score_completions(
    reward_model, rollout: Rollout, missing_eos_penalty: float | None = None
) -> torch.Tensor:
    """Step 2a: the reward model's score of each whole sequence (read at its last real token), ``(B,)``.

    ``reward_model`` is a ``RewardModel`` (called on ``input_ids, attention_mask``) or any function
    ``rollout -> (B,)`` float tensor (a rule-based reward). Rows that never emitted ``<eos>`` lose
    ``missing_eos_penalty`` when it is set (TRL's option).
    """
    if isinstance(reward_model, torch.nn.Module):
        scores = reward_model(rollout.input_ids, rollout.attention_mask).float()
        check_finite("reward-model scores", scores)
    elif callable(reward_model):
        scores = check_rewards(call_user(reward_model, "reward function", rollout), rollout)
    else:
        raise TypeError(
            f"reward_model must be a RewardModel or a function rollout -> (B,) tensor, got {type(reward_model).__name__}"
        )
    if missing_eos_penalty is not None:
        scores = scores - missing_eos_penalty * (~rollout.finished).float()
    return scores


def critic_values(critic, rollout: Rollout) -> torch.Tensor:
    """Step 3: V of the state before each action, ``(B, T-1)``: the critic's output at columns 0..T-2.

    Gradients flow (wrap in ``torch.no_grad()`` for V_old).
    """
    return critic(rollout.input_ids, rollout.attention_mask)[:, :-1].float()


def policy_ratio(
    policy, rollout: Rollout, old_logp: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 5: fresh forward pass; returns ``(ratio, logp_new)``, both ``(B, T-1)``, ratio = exp(new - old)."""
    logp_new = token_logprobs(policy, rollout.input_ids, rollout.attention_mask, temperature)
    return torch.exp(logp_new - old_logp), logp_new


def ppo_update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float) -> float:
    """Step 9: one optimiser step on actor and critic together; returns the gradient norm before clipping."""
    optimizer.zero_grad()
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return float(norm)


@dataclass
class PPOBatch:
    """Everything steps 1-4 produce for one batch; per-token tensors are ``(B, T-1)`` on the action grid."""

    rollout: Rollout
    mask: torch.Tensor  # (B, T-1) float, 1 on generated tokens
    old_logp: torch.Tensor  # (B, T-1) log pi_old of the sampled tokens
    ref_logp: torch.Tensor  # (B, T-1) log pi_ref of the sampled tokens
    scores: torch.Tensor  # (B,) reward-model score (minus the missing-eos penalty)
    rewards: torch.Tensor  # (B, T-1) per-token rewards
    old_values: torch.Tensor  # (B, T-1) V_old
    advantages: torch.Tensor  # (B, T-1) GAE advantages (whitened if configured), 0 off the mask
    returns: torch.Tensor  # (B, T-1) R = A + V_old (before whitening), 0 off the mask
    kl: torch.Tensor  # (B,) sum over tokens of logp - ref_logp (TRL's objective/kl per sequence)


@torch.no_grad()
def make_batch(policy, reference, reward_model, critic, tokenizer, prompts, cfg: RLHFConfig, generator=None):
    """Steps 1-4 in one call: sample, score + KL-penalised rewards, V_old, GAE. Returns a :class:`PPOBatch`."""
    rollout = sample_completions(policy, tokenizer, prompts, cfg, generator)  # 1
    mask = shift_mask(rollout.completion_mask).float()
    old_logp = rollout_logprobs(policy, rollout, cfg.temperature)
    ref_logp = rollout_logprobs(reference, rollout, cfg.temperature)
    scores = score_completions(reward_model, rollout, cfg.missing_eos_penalty)  # 2
    rewards = per_token_rewards(scores, old_logp, ref_logp, mask, cfg.kl_coef)
    old_values = critic_values(critic, rollout) * mask  # 3
    advantages, returns = token_gae(rewards, old_values, mask, cfg.gamma, cfg.lam)  # 4
    if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    kl = ((old_logp - ref_logp) * mask).sum(-1)
    return PPOBatch(rollout, mask, old_logp, ref_logp, scores, rewards, old_values, advantages, returns, kl)


def ppo_epochs(
    policy, critic, optimizer, batch: PPOBatch, cfg: RLHFConfig, generator=None
) -> dict[str, float]:
    """Steps 5-9 repeated for ``cfg.ppo_epochs`` passes over the batch (step 10), in ``cfg.minibatches`` parts.

    Returns the mean over updates of ``policy_loss``, ``value_loss``, ``clipfrac`` (fraction of completion
    tokens whose ratio was clipped) and ``approx_kl`` (KL(pi_old || pi_new), k3), and ``grad_norm``.
    """
    B = batch.mask.shape[0]
    if cfg.minibatches > B:
        raise ValueError(f"RLHFConfig.minibatches must be in [1, batch size {B}], got {cfg.minibatches}")
    stats: dict[str, list[float]] = {
        k: [] for k in ("policy_loss", "value_loss", "clipfrac", "approx_kl", "grad_norm")
    }
    policy.train()
    critic.train()
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(B, generator=generator).to(batch.mask.device)
        for idx in order.chunk(cfg.minibatches):
            roll = _rows(batch.rollout, idx)
            m = batch.mask[idx]
            ratio, logp_new = policy_ratio(policy, roll, batch.old_logp[idx], cfg.temperature)  # 5
            pg_loss = ppo_policy_loss(
                logp_new, batch.old_logp[idx], batch.advantages[idx], m, cfg.clip_eps
            )  # 6-7
            values_new = critic_values(critic, roll)
            vf_loss = ppo_value_loss(
                values_new, batch.old_values[idx], batch.returns[idx], m, cfg.value_clip_eps
            )  # 8
            norm = ppo_update(optimizer, pg_loss + cfg.vf_coef * vf_loss, cfg.max_grad_norm)  # 9
            with torch.no_grad():
                clipped = ((ratio - 1.0).abs() > cfg.clip_eps).float()
                stats["clipfrac"].append(masked_mean(clipped, m).item())
                stats["approx_kl"].append(approx_kl(logp_new, batch.old_logp[idx], mask=m).item())
            stats["policy_loss"].append(pg_loss.item())
            stats["value_loss"].append(vf_loss.item())
            stats["grad_norm"].append(norm)
    policy.eval()
    critic.eval()
    return {k: float(np.mean(v)) for k, v in stats.items()}


def _rows(rollout: Rollout, idx: torch.Tensor) -> Rollout:
    """The rows ``idx`` of a rollout (tensors only; text fields are not needed for the update)."""
    return Rollout(
        input_ids=rollout.input_ids[idx],
        attention_mask=rollout.attention_mask[idx],
        completion_mask=rollout.completion_mask[idx],
        prompt_index=rollout.prompt_index[idx],
        finished=rollout.finished[idx],
        prompts=rollout.prompts,
        completions=[],
        texts=[],
        prompt_length=rollout.prompt_length,
        num_samples=rollout.num_samples,
    )


def make_critic(model) -> ValueHeadModel:
    """A fresh critic: a copy of ``model``'s backbone (a causal LM, or a RewardModel's backbone) + a ZERO head.

    V starts at 0 for every token, so the first advantages are the plain (KL-penalised) rewards-to-go.
    TRL instead copies the reward model, head included; its head was only trained at the last token, so
    its values on the prefixes are arbitrary -- in this course's runs that gave advantages that pushed
    completions to grow longer in the first batches. A zero head avoids that.
    """
    backbone = getattr(model, "backbone", model)
    critic = ValueHeadModel(copy.deepcopy(backbone))
    torch.nn.init.zeros_(critic.head.weight)
    torch.nn.init.zeros_(critic.head.bias)
    critic.requires_grad_(True)
    critic.to(next(backbone.parameters()).device)
    return critic


def load_rlhf_models(device: torch.device | str | None = None, policy_name: str = "reviews"):
    """The four models of chapter 07, ready for :func:`rlcourse.rlhf.train_ppo`.

    Returns:
        ``(policy, reference, reward_model, critic, tokenizer)``: the shipped SFT model (trained), its frozen
        copy, the shipped reward model of chapter 06 (``data/reward_model``, frozen) and :func:`make_critic`.
    """
    from rlcourse.lm.model import frozen_copy, load_model
    from rlcourse.reward_model import load_reward_model

    policy, tokenizer = load_model(policy_name, device)
    reward_model, _ = load_reward_model(device=device)
    return policy, frozen_copy(policy), reward_model, make_critic(policy), tokenizer
