"""PPO for a language model, RLHF-style (chapter 07): per-token rewards, GAE over tokens, the ten steps.

Seed 004 section 4.1 lists ten steps; each has one function here so that notebook 07 can run them
one cell at a time (the trainer :func:`train_ppo` simply calls them in order):

 1. :func:`sample_completions`   -- sample completions with the actor (策略模型 / policy).
 2. :func:`score_completions` + :func:`per_token_rewards` -- reward-model (奖励模型) score on the last
    real token, plus a per-token KL penalty (KL 散度) to the frozen reference model (参考模型).
 3. :func:`critic_values`        -- the critic (价值模型) gives V_old for every token.
 4. :func:`token_gae`            -- advantages (优势) with GAE (广义优势估计) over the completion tokens.
 5. :func:`policy_ratio`         -- r = pi / pi_old from a fresh forward pass.
 6-7. :func:`ppo_policy_loss`    -- push r up where A > 0, down where A < 0, with r clipped (裁剪) to
    [1 - eps, 1 + eps] (``rlcourse.ppo.clipped_surrogate_loss`` on the completion tokens).
 8. :func:`ppo_value_loss`       -- clipped value loss towards R = A + V_old.
 9. :func:`ppo_update`           -- one optimiser step on actor and critic.
10. :func:`ppo_epochs`           -- steps 5-9 for several epochs on the batch; then the next batch.

Token alignment. ``rlcourse.lm.logprobs.token_logprobs`` returns (B, T-1): column j scores token j+1
of ``input_ids`` (B, T). Everything per token here lives on that grid of *actions*: the action mask is
``shift_mask(rollout.completion_mask)`` = ``completion_mask[:, 1:]``, the value of the state before action j is
the critic's output at position j, and the reward-model score lands on the last column where the action
mask is 1 -- the ``<eos>`` or the last generated token, never a pad (TRL #3750 put it one past the end).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcourse.gae import compute_gae
from rlcourse.lm.generate import Rollout, generate
from rlcourse.lm.logprobs import masked_mean, shift_mask, token_logprobs
from rlcourse.lm.model import ValueHeadModel
from rlcourse.ppo import approx_kl, clipped_surrogate_loss, clipped_value_loss
from rlcourse.progress import progress_bar

__all__ = [
    "PPOBatch",
    "RLHFConfig",
    "critic_values",
    "last_token_index",
    "load_rlhf_models",
    "make_batch",
    "make_critic",
    "masked_whiten",
    "per_token_rewards",
    "policy_ratio",
    "ppo_epochs",
    "ppo_policy_loss",
    "ppo_update",
    "ppo_value_loss",
    "rollout_logprobs",
    "sample_completions",
    "score_completions",
    "token_gae",
    "train_ppo",
]


HISTORY_KEYS = (
    "step",
    "proxy_reward",
    "gold_reward",
    "kl",
    "time",
    "policy_loss",
    "value_loss",
    "clipfrac",
    "approx_kl",
    "length",
    "finished",
    "samples",
)
"""What :func:`train_ppo`'s history holds, one entry per batch (chapter 10 reads it beside GRPO and DPO)."""


def _check_mask(mask: torch.Tensor, shape: torch.Size, name: str = "completion_mask") -> torch.Tensor:
    """Validate a 0/1 mask of the given shape with at least one 1 per row; return it as a float tensor."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != shape:
        hint = ""
        if mask.ndim == 2 and mask.shape[0] == shape[0] and mask.shape[1] == shape[1] + 1:
            hint = (
                " -- it looks like the token-grid mask of input_ids; log-probs live on the action grid "
                "(logits at t score token t+1), so pass rlcourse.lm.logprobs.shift_mask(completion_mask)"
            )
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)} but the per-token tensors have shape {tuple(shape)}{hint}"
        )
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, T) with B, T >= 1, got {tuple(mask.shape)}")
    m = mask.to(torch.float32) if mask.dtype == torch.bool else mask
    if not torch.all((m == 0) | (m == 1)):
        raise ValueError(f"{name} must hold only 0 and 1")
    empty = (m.sum(dim=1) == 0).nonzero().flatten()
    if empty.numel():
        raise ValueError(
            f"{name} rows {empty.tolist()[:5]} have no completion token; every sequence needs at least one "
            "generated token (check the mask is aligned with the log-probs: use rlcourse.lm.logprobs.shift_mask)"
        )
    return m


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a (B, T) 0/1 mask -> (B,) long.

    With left padding and completions that stop at different lengths, this is the ``<eos>`` (or the
    last generated token when a completion hit the length limit), never a trailing pad.
    """
    m = _check_mask(mask, mask.shape, "mask")
    T = m.shape[1]
    return (T - 1) - torch.flip(m, dims=[1]).argmax(dim=1)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Normalise ``x`` to mean 0, std 1 over the masked entries (TRL's ``masked_whiten``); zero elsewhere.

    (B, T), (B, T) -> (B, T). The variance is unbiased (N - 1), as in TRL.
    """
    m = _check_mask(mask, x.shape, "mask").to(x.dtype)
    n = m.sum()
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / (n - 1).clamp(min=1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * m


def per_token_rewards(
    scores: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    completion_mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """RLHF reward of every generated token: ``-kl_coef * (logp - ref_logp)``, plus the score at the end.

    ``r_t = -kl_coef * (log pi(a_t|s_t) - log pi_ref(a_t|s_t))`` on completion tokens (0 elsewhere), and
    the reward-model score is added on the *last real completion token* of each row (the largest t with
    ``completion_mask[b, t] == 1``; never a pad).

    Args:
        scores: (B,) reward-model score of each completion.
        logp: (B, T) log-probs of the taken tokens under the policy that sampled them.
        ref_logp: (B, T) the same under the frozen reference model.
        completion_mask: (B, T) 1 on generated tokens (including ``<eos>``), 0 on prompt and padding;
            on the action grid of ``logp`` (``shift_mask(rollout.completion_mask)``).
        kl_coef: beta >= 0, the weight of the KL penalty.

    Returns:
        (B, T) rewards, no gradient.
    """
    for name, t in (("logp", logp), ("ref_logp", ref_logp)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a (B, T) tensor, got {getattr(t, 'shape', type(t).__name__)}")
    if ref_logp.shape != logp.shape:
        raise ValueError(f"ref_logp has shape {tuple(ref_logp.shape)} but logp has shape {tuple(logp.shape)}")
    if not isinstance(scores, torch.Tensor) or scores.shape != (logp.shape[0],):
        raise ValueError(
            f"scores must have shape ({logp.shape[0]},), one per sequence, got {getattr(scores, 'shape', scores)}"
        )
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    m = _check_mask(completion_mask, logp.shape).to(logp.dtype)
    with torch.no_grad():
        rewards = -kl_coef * (logp - ref_logp) * m
        last = last_token_index(m)
        rows = torch.arange(logp.shape[0], device=logp.device)
        rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def token_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    completion_mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over the tokens of each completion, with ``rlcourse.gae.compute_gae``.

    Each row is one episode: it starts at the first completion token and ends (done = 1, nothing
    bootstrapped) at the last one. Rewards and values outside the mask are ignored, and advantages and
    returns there are 0. The (B, T) batch is transposed to the (T, N) layout of ``compute_gae``.

    Args:
        rewards: (B, T) per-token rewards (:func:`per_token_rewards`).
        values: (B, T) V_old of the state before each action.
        completion_mask: (B, T) 0/1, contiguous 1s per row (prompt, then completion, then padding).
        gamma, lam: discount and GAE lambda (RLHF uses gamma = 1).

    Returns:
        ``(advantages, returns)``, both (B, T), zero outside the mask; returns = advantages + values.
    """
    if rewards.ndim != 2 or values.shape != rewards.shape:
        raise ValueError(
            f"rewards and values must both have shape (B, T), got {tuple(rewards.shape)} and {tuple(values.shape)}"
        )
    m = _check_mask(completion_mask, rewards.shape).to(values.dtype)
    starts = (torch.diff(m, dim=1, prepend=torch.zeros_like(m[:, :1])) == 1).sum(dim=1)
    if torch.any(starts > 1):
        raise ValueError(
            "completion_mask must have one contiguous run of 1s per row (prompt | completion | pad)"
        )
    done = torch.zeros_like(m)
    rows = torch.arange(m.shape[0], device=m.device)
    done[rows, last_token_index(m)] = 1.0
    r, v = (rewards * m).detach(), (values * m).detach()
    adv, ret = compute_gae(r.T, v.T, done.T, torch.zeros_like(v[:, 0]), gamma, lam)
    return adv.T * m, ret.T * m


# --------------------------------------------------------------------------------------------------
# The ten steps, one function each
# --------------------------------------------------------------------------------------------------
@dataclass
class RLHFConfig:
    """Hyperparameters of PPO for an LM (TRL's PPO defaults where marked; tuned for the tiny model otherwise)."""

    total_batches: int = 30  # how many times steps 1-10 run (batches of fresh samples)
    batch_size: int = 32  # prompts per batch, one completion each
    max_new_tokens: int = 48  # the episode's time limit in tokens
    temperature: float = 0.7  # sampling temperature, also applied to every log-prob (TRL: 0.7)
    kl_coef: float = 0.05  # beta of the per-token KL penalty in the reward (TRL: 0.05)
    gamma: float = 1.0  # discount over tokens (TRL: 1)
    lam: float = 0.95  # GAE lambda (TRL: 0.95)
    clip_eps: float = 0.2  # ratio clip (TRL: 0.2)
    value_clip_eps: float = 0.2  # value clip (TRL: 0.2)
    vf_coef: float = 0.1  # weight of the value loss (TRL: 0.1)
    ppo_epochs: int = 4  # passes over each batch (TRL: 4)
    minibatches: int = 1  # minibatches per pass (TRL: 1)
    lr: float = 3e-4  # Adam learning rate of actor and critic (TRL: 3e-6 for billion-parameter models)
    max_grad_norm: float = 1.0  # global gradient-norm clip
    whiten_advantages: bool = True  # normalise advantages over the batch's completion tokens (TRL: yes)
    missing_eos_penalty: float | None = (
        1.0  # subtracted from the score of rows without <eos> (TRL: None, i.e. off)
    )
    seed: int = 0  # seeds prompt choice and sampling


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

    Rows that never emitted ``<eos>`` lose ``missing_eos_penalty`` when it is set (TRL's option).
    """
    scores = reward_model(rollout.input_ids, rollout.attention_mask).float()
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


def ppo_policy_loss(
    logp_new: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """Steps 6-7: ``mean over completion tokens of -min(r A, clip(r, 1-eps, 1+eps) A)`` (``rlcourse.ppo``)."""
    return clipped_surrogate_loss(logp_new, old_logp, advantages, clip_eps, mask=mask)


def ppo_value_loss(
    values_new: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """Step 8: ``0.5 mean max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)`` with R = A + V_old."""
    return clipped_value_loss(values_new, old_values, returns, clip_eps, mask=mask)


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
    if cfg.minibatches < 1 or cfg.minibatches > B:
        raise ValueError(f"minibatches must be in [1, batch size {B}], got {cfg.minibatches}")
    stats: dict[str, list[float]] = {
        "policy_loss": [],
        "value_loss": [],
        "clipfrac": [],
        "approx_kl": [],
        "grad_norm": [],
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
    """The four models of chapter 07, ready for :func:`train_ppo`.

    Returns:
        ``(policy, reference, reward_model, critic, tokenizer)``: the shipped SFT model (trained), its frozen
        copy, the shipped reward model of chapter 06 (``data/reward_model``, frozen) and :func:`make_critic`.
    """
    from rlcourse.lm.model import frozen_copy, load_model
    from rlcourse.reward_model import load_reward_model

    policy, tokenizer = load_model(policy_name, device)
    reward_model, _ = load_reward_model(device=device)
    return policy, frozen_copy(policy), reward_model, make_critic(policy), tokenizer


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------
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
) -> dict[str, list]:
    """RLHF with PPO: ``cfg.total_batches`` iterations of the ten steps. Trains ``policy`` and ``critic`` in place.

    Args:
        policy: the actor, a causal LM (trained).
        reference: frozen copy of the initial policy (``rlcourse.lm.model.frozen_copy``).
        reward_model: a ``RewardModel`` (frozen; its score is the proxy reward).
        critic: a ``ValueHeadModel`` (trained), e.g. :func:`make_critic` of the policy.
        tokenizer: shared by all four models.
        prompt_pool: prompts to draw each batch from (with replacement, seeded by ``cfg.seed``).
        cfg: :class:`RLHFConfig`.
        gold_fn: optional ``rollout -> (B,)`` hidden gold reward (e.g. ``ReviewTask().rewards``), measured
            on the same samples, never used for training.
        progress: show a tqdm bar.

    Returns:
        history, a dict of equal-length lists with one entry per batch (what chapter 10 compares):
        ``"step"`` (batch index), ``"proxy_reward"`` (mean reward-model score of the batch's samples, before
        the eos penalty), ``"gold_reward"`` (mean gold reward, NaN without ``gold_fn``), ``"kl"`` (mean over
        samples of sum over tokens of log pi - log pi_ref, in nats, TRL's ``objective/kl``), ``"time"``
        (seconds since the start, cumulative), ``"policy_loss"``, ``"value_loss"``, ``"clipfrac"``,
        ``"approx_kl"``, ``"length"`` (mean completion tokens), ``"finished"`` (fraction that emitted
        ``<eos>``); plus ``"samples"``: the first 4 texts of every batch.
    """
    cfg = cfg or RLHFConfig()
    if len(prompt_pool) == 0:
        raise ValueError("prompt_pool is empty; pass the prompts to train on (e.g. ReviewTask.prompts(256))")
    device = next(policy.parameters()).device
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    cpu_gen = torch.Generator().manual_seed(cfg.seed + 1)
    reward_model.eval()
    reference.eval()
    params = [p for m in (policy, critic) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    hist: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    steps = progress_bar(range(cfg.total_batches), progress, f"PPO kl_coef={cfg.kl_coef:g}")
    t0 = time.perf_counter()
    for step in steps:
        prompts = [prompt_pool[i] for i in rng.integers(0, len(prompt_pool), cfg.batch_size)]
        batch = make_batch(policy, reference, reward_model, critic, tokenizer, prompts, cfg, gen)  # steps 1-4
        stats = ppo_epochs(policy, critic, optimizer, batch, cfg, cpu_gen)  # steps 5-10
        raw = batch.scores
        if cfg.missing_eos_penalty is not None:
            raw = raw + cfg.missing_eos_penalty * (~batch.rollout.finished).float()
        hist["step"].append(step)
        hist["proxy_reward"].append(raw.mean().item())
        hist["gold_reward"].append(gold_fn(batch.rollout).float().mean().item() if gold_fn else float("nan"))
        hist["kl"].append(batch.kl.mean().item())
        hist["time"].append(time.perf_counter() - t0)
        for k in ("policy_loss", "value_loss", "clipfrac", "approx_kl"):
            hist[k].append(stats[k])
        hist["length"].append(batch.rollout.completion_lengths.float().mean().item())
        hist["finished"].append(batch.rollout.finished.float().mean().item())
        hist["samples"].append(batch.rollout.texts[:4])
    return hist
