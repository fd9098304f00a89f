"""DPO: Direct Preference Optimization (chapter 09 derives it; chapter 10 compares it with PPO and GRPO).

The KL-regularised objective ``max_pi E[r] - beta KL(pi || pi_ref)`` has the closed-form optimum
``pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)``. Solved for the reward,
``r = beta log(pi*/pi_ref) + beta log Z(x)``; put into the Bradley-Terry likelihood of a preference
pair (chapter 06), the unknown ``Z(x)`` cancels and the reward model (奖励模型) disappears: the policy
(策略模型) is trained directly on the pairs with

    loss = -log sigmoid(beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))])

``beta * (log pi - log pi_ref)`` is DPO's *implicit reward*.

Conventions, and where they agree with TRL 1.16's ``DPOTrainer`` (checked to 1e-5 in
``tests/test_trl_parity.py``):

- Log-probs are *summed* over the completion's tokens (prompt and padding masked out).
- ``"ipo"``: TRL divides each log-ratio by the completion's number of tokens before the square
  (a length normalisation the IPO authors confirmed). Pass ``chosen_lengths`` / ``rejected_lengths``
  to :func:`dpo_loss` and it does the same; without them the log-probs you pass are used as they are
  (so pass per-token *averaged* log-probs yourself). The returned rewards stay
  ``beta * (summed log-ratio)`` either way, as in TRL.
- The chosen-answer NLL of our trainer is TRL's ``loss_type=["sigmoid", "sft"]`` with
  ``loss_weights=[1, nll_weight]`` (the RPO paper's ``alpha``): the mean of ``-log pi`` over all chosen
  completion tokens of the batch (:func:`chosen_nll`).

Public API: :func:`dpo_loss`, :func:`chosen_nll`, :func:`closed_form_optimum`; the trainer
:class:`DPOConfig` / :func:`train_dpo` (one step: :func:`dpo_step`; its history is documented in
:func:`train_dpo`); helpers :func:`pair_batch`, :func:`pair_logps`, :func:`trim_padding` and
:func:`sample_and_score` (gold score, grammaticality and KL of sampled generations).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rlcourse.lm.generate import generate
from rlcourse.lm.logprobs import shift_mask, token_logprobs
from rlcourse.progress import progress_bar

LOSS_TYPES = ("sigmoid", "ipo", "hinge")


def _check_pair_tensors(**tensors: torch.Tensor) -> int:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 1:
        raise ValueError(f"DPO log-probs must be 1-D, one per pair (shape (B,)); got shapes {shapes}")
    if first[0] == 0:
        raise ValueError("the batch is empty: pass at least one preference pair")
    if any(s != first for s in shapes.values()):
        raise ValueError(f"all four log-prob tensors must have the same shape (B,); got {shapes}")
    return first[0]


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of preference pairs, and the implicit rewards.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``(B,)`` summed completion log-probs of the chosen
            (preferred) and rejected answers under the policy being trained (with grad).
        ref_chosen_logps, ref_rejected_logps: ``(B,)`` the same under the frozen reference model.
        beta: the strength of the implicit KL regularisation; small beta lets the policy move far.
        loss_type: ``"sigmoid"`` (DPO) ``-logsigmoid(beta * delta)``; ``"hinge"`` (SLiC)
            ``relu(1 - beta * delta)``; ``"ipo"`` ``(delta_avg - 1 / (2 beta))^2`` with per-token averaged
            log-ratios (see the module docstring). ``delta`` = chosen log-ratio - rejected log-ratio.
        chosen_lengths, rejected_lengths: ``(B,)`` completion token counts; only ``"ipo"`` uses them.

    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the scalar mean loss and the detached implicit
        rewards ``beta * (logp - ref_logp)``, each ``(B,)``. At initialisation (policy = reference) the
        sigmoid loss is ``log 2 = 0.693``.
    """
    _check_pair_tensors(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * (chosen_logratios - rejected_logratios))
    else:
        if (chosen_lengths is None) != (rejected_lengths is None):
            raise ValueError("pass both chosen_lengths and rejected_lengths, or neither")
        c, r = chosen_logratios, rejected_logratios
        if chosen_lengths is not None:
            _check_pair_tensors(
                chosen=chosen_logratios, chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths
            )
            c = c / chosen_lengths.to(c.dtype).clamp(min=1.0)
            r = r / rejected_lengths.to(r.dtype).clamp(min=1.0)
        losses = (c - r - 1 / (2 * beta)) ** 2
    return losses.mean(), beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def chosen_nll(per_token_logps: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the chosen answers: mean of ``-log pi`` over all their completion tokens.

    per_token_logps, completion_mask: ``(B, T)``. Returns a scalar (TRL's ``"sft"`` DPO loss term).
    """
    if per_token_logps.shape != completion_mask.shape or per_token_logps.dim() != 2:
        raise ValueError(
            f"per_token_logps {tuple(per_token_logps.shape)} and completion_mask {tuple(completion_mask.shape)} "
            "must both be (B, T)"
        )
    mask = completion_mask.bool()
    if not mask.any():
        raise ValueError("completion_mask has no completion tokens: nothing to take the NLL of")
    return -per_token_logps[mask].mean()


def closed_form_optimum(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """The optimum of ``E_pi[r] - beta KL(pi || pi_ref)`` over a finite set of answers.

    ``pi*(y) = pi_ref(y) exp(r(y) / beta) / Z``. ref_probs, rewards: ``(..., K)`` over K answers (one row
    per prompt). Returns ``(..., K)`` probabilities.
    """
    if ref_probs.shape != rewards.shape:
        raise ValueError(f"ref_probs {tuple(ref_probs.shape)} and rewards {tuple(rewards.shape)} must match")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return torch.softmax(torch.log(ref_probs) + rewards / beta, dim=-1)


# ------------------------------------------------------------------------------------------- trainer


@dataclass
class DPOConfig:
    """Hyperparameters of DPO on the tiny LM (TRL's names in brackets)."""

    steps: int = 60
    """optimiser steps"""
    batch_size: int = 32
    """preference pairs per step, drawn from the pair set with replacement"""
    lr: float = 1e-4
    """Adam learning rate"""
    beta: float = 0.1
    """DPO's beta: strength of the implicit KL regularisation (TRL: 0.1)"""
    loss_type: str = "sigmoid"
    """"sigmoid" (DPO), "ipo" or "hinge" (see dpo_loss)"""
    nll_weight: float = 0.0
    """weight of the chosen answers' NLL added to the loss (TRL: loss_type=["sigmoid", "sft"]); ~1 keeps the
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


def pair_batch(
    tokenizer, pairs: Sequence[dict], device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise pairs as one batch ``[chosen_1..chosen_B; rejected_1..rejected_B]`` (TRL's concatenated layout).

    pairs: dicts with ``prompt``, ``chosen``, ``rejected`` (``prompt + chosen`` is the whole text).
    Returns ``input_ids, attention_mask, completion_mask``, each ``(2B, T)``, left-padded; the completion
    mask covers the answer's tokens and its ``<eos>``.
    """
    from rlcourse.lm.sft import sft_batch

    if len(pairs) == 0:
        raise ValueError("no preference pairs: pass at least one dict with prompt, chosen, rejected")
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in pairs[0]]
    if missing:
        raise ValueError(f"preference pairs need keys prompt, chosen, rejected; missing {missing}")
    prompts = [p["prompt"] for p in pairs] * 2
    answers = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    return sft_batch(tokenizer, prompts, answers, device)


def pair_logps(model, input_ids, attention_mask, completion_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``(2B, T-1)`` and summed ``(2B,)`` completion log-probs of a :func:`pair_batch`."""
    mask = shift_mask(completion_mask).to(torch.float32)
    per_token = token_logprobs(model, input_ids, attention_mask) * mask
    return per_token, per_token.sum(-1)


@torch.no_grad()
def sample_and_score(
    policy,
    ref_model,
    tokenizer,
    prompts: Sequence[str],
    task,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict:
    """Sample one completion per prompt and measure what DPO's loss does not show.

    Returns ``gold`` (mean ``task.gold_score`` of prompt + completion), ``grammatical`` (fraction
    grammatical: the guardrail), ``kl`` (mean over samples of the summed ``logp - ref_logp`` over the
    completion, in nats: an unbiased estimate of KL(pi || pi_ref) per sequence, chapter 07's ``kl``),
    ``length`` and ``texts``.
    """
    roll = generate(
        policy,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        generator=generator,
    )
    mask = shift_mask(roll.completion_mask).float()
    lp = token_logprobs(policy, roll.input_ids, roll.attention_mask, temperature)
    ref = token_logprobs(ref_model, roll.input_ids, roll.attention_mask, temperature)
    return {
        "gold": task.rewards(roll).mean().item(),
        "grammatical": task.grammatical_rate(roll.texts),
        "kl": ((lp - ref) * mask).sum(-1).mean().item(),
        "length": roll.completion_lengths.float().mean().item(),
        "texts": roll.texts,
    }


def dpo_step(
    policy, optimizer, batch: tuple[torch.Tensor, ...], ref_logps: torch.Tensor, cfg: DPOConfig
) -> dict:
    """One DPO update on a :func:`pair_batch` with precomputed reference log-probs ``(2B,)``.

    Returns floats: ``loss`` (total), ``dpo_loss``, ``nll``, ``chosen_logp`` / ``rejected_logp`` (mean summed
    log-probs under the policy), ``chosen_reward`` / ``rejected_reward`` (implicit rewards), ``reward_acc``
    (fraction with chosen reward > rejected), ``margin``, ``grad_norm``.
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
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm, foreach=True)
    optimizer.step()
    return {
        "loss": loss.item(),
        "dpo_loss": dpo.item(),
        "nll": nll.item(),
        "chosen_logp": logps[:B].mean().item(),
        "rejected_logp": logps[B:].mean().item(),
        "chosen_reward": cr.mean().item(),
        "rejected_reward": rr.mean().item(),
        "reward_acc": (cr > rr).float().mean().item(),
        "margin": (cr - rr).mean().item(),
        "grad_norm": float(grad_norm),
    }


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
        cfg: :class:`DPOConfig`.
        ref_model: the frozen reference; default ``frozen_copy(policy)`` taken before training. Its log-probs
            of every pair are computed once, before training (TRL's ``precompute_ref_log_probs``).
        task, eval_prompts: for evaluation (a ``ReviewTask`` and prompts such as ``"the food was"``); sampled
            generations scored by :func:`sample_and_score` every ``cfg.eval_every`` steps.
        progress: show a tqdm bar. callback: called as ``callback(step, row)`` after every step.

    Returns:
        history, a dict of lists (chapter 10 reads it). One entry per step: ``"step"``, ``"loss"``,
        ``"dpo_loss"``, ``"nll"``, ``"chosen_logp"``, ``"rejected_logp"``, ``"chosen_reward"``,
        ``"rejected_reward"``, ``"reward_acc"``, ``"margin"``, ``"grad_norm"``, ``"step_time"``, ``"time"``
        (cumulative training seconds, evaluation excluded), ``"memory_mb"`` (state memory of policy +
        reference, ``rlcourse.grpo.state_memory_mb``). Evaluations (step 0 = before training):
        ``"eval_step"``, ``"gold_reward"``, ``"grammatical"``, ``"kl"`` (nats per sequence), ``"length"``,
        ``"samples"`` (the first 4 texts).
    """
    from rlcourse.grpo import make_adam, state_memory_mb
    from rlcourse.lm.model import frozen_copy

    cfg = cfg or DPOConfig()
    if cfg.loss_type not in LOSS_TYPES:
        raise ValueError(f"cfg.loss_type must be one of {LOSS_TYPES}, got {cfg.loss_type!r}")
    if len(pairs) == 0:
        raise ValueError("no preference pairs: pass e.g. ReviewTask().preference_pairs(512)")
    if eval_prompts is not None and task is None:
        raise ValueError("eval_prompts needs a task with gold_score and is_grammatical (e.g. ReviewTask())")
    device = next(policy.parameters()).device
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
    step_keys = [
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
        "grad_norm",
        "step_time",
        "time",
        "memory_mb",
    ]
    eval_keys = ["eval_step", "gold_reward", "grammatical", "kl", "length", "samples"]
    hist: dict[str, list] = {k: [] for k in step_keys + eval_keys}
    memory = state_memory_mb([policy], [ref_model])

    def evaluate(step: int) -> None:
        if eval_prompts is None:
            return
        prompts = [eval_prompts[i % len(eval_prompts)] for i in range(cfg.eval_samples)]
        r = sample_and_score(
            policy, ref_model, tokenizer, prompts, task, cfg.max_new_tokens, cfg.temperature, gen
        )
        hist["eval_step"].append(step)
        hist["gold_reward"].append(r["gold"])
        hist["grammatical"].append(r["grammatical"])
        hist["kl"].append(r["kl"])
        hist["length"].append(r["length"])
        hist["samples"].append(r["texts"][:4])

    policy.eval()  # dropout off while training, as TRL's disable_dropout=True (the course's models have none)
    evaluate(0)
    steps = progress_bar(range(cfg.steps), progress, f"DPO beta={cfg.beta:g} nll={cfg.nll_weight:g}")
    elapsed = 0.0
    for step in steps:
        t0 = time.perf_counter()
        idx = torch.as_tensor(rng.integers(0, n, cfg.batch_size), device=device)
        rows = torch.cat([idx, idx + n])
        batch = trim_padding((ids[rows], attn[rows], comp[rows]))
        row = dpo_step(policy, optimizer, batch, ref_all[rows], cfg)
        dt = time.perf_counter() - t0
        elapsed += dt
        row.update(step=step + 1, step_time=dt, time=elapsed, memory_mb=memory)
        for k in step_keys:
            hist[k].append(row[k])
        if callback is not None:
            callback(step + 1, row)
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            evaluate(step + 1)
    policy.eval()
    return hist


def trim_padding(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Drop the left columns that are padding in every row (a batch cut from pairs padded to the longest of all).

    batch: ``(input_ids, attention_mask, completion_mask)``, each ``(B, T)`` left-padded; returns the same three
    as ``(B, T')`` with ``T' <= T``.
    """
    ids, attn, comp = batch
    real = attn.sum(0).nonzero()
    if real.numel() == 0:
        raise ValueError("the batch has no real token (attention_mask is all zeros)")
    keep = int(real[0])
    return ids[:, keep:], attn[:, keep:], comp[:, keep:]
