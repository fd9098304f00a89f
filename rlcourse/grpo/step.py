"""One GRPO step and its variants' switches (chapter 08 builds it; chapter 11 turns the switches).

:func:`grpo_step`: sample G completions for each prompt (with DAPO's dynamic sampling:
until the batch holds enough groups with a reward spread), score them, compute advantages (group or
leave-one-out), then ``num_iterations`` clipped updates. :func:`rlcourse.grpo.trainer.train_grpo` repeats it.

Data parallel (chapter 12): when a ``torch.distributed`` process group is initialised, :func:`grpo_step`
trains on this rank's share of the prompts, scales its loss by its share of the GLOBAL normaliser
(:func:`global_loss_scale`) and sums the gradients over ranks before clipping, so every rank applies the
update a single process would compute from the whole batch; the logged statistics are global.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rlcourse import distributed
from rlcourse.grpo.advantages import (
    all_equal_fraction,
    check_reward_output,
    group_advantages,
    rloo_advantages,
)
from rlcourse.grpo.config import GRPOConfig
from rlcourse.grpo.loss import grpo_loss, importance_ratio
from rlcourse.grpo.overlong import mask_truncated_completions
from rlcourse.grpo.parallel import check_data_parallel, global_loss_scale, global_stats, sample_per_prompt
from rlcourse.grpo.sampling import dynamic_sample
from rlcourse.lm.generate import Rollout, generate
from rlcourse.lm.kl import kl_k3
from rlcourse.lm.logprobs import logprobs_from_logits, shift_mask
from rlcourse.lm.model import position_ids_from_mask


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


def logprobs_and_entropy(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass: ``(B, T-1)`` log-probs of the tokens and ``(B, T-1)`` entropy of each next-token
    distribution (nats; at temperature ``temperature``), as TRL's ``_get_per_token_logps_and_entropies``."""
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    ).logits
    logp = logprobs_from_logits(logits, input_ids, temperature)
    with torch.no_grad():
        lp_all = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
        entropy = -(lp_all.exp() * lp_all).sum(-1)
    return logp, entropy


def _advantages(rewards: torch.Tensor, cfg: GRPOConfig) -> torch.Tensor:
    if cfg.advantage_estimator == "rloo":
        return rloo_advantages(rewards, cfg.group_size)
    return group_advantages(rewards, cfg.group_size, scale=cfg.scale_rewards)


def _sample(policy, tokenizer, prompts, reward_fn, cfg, generator, sample_prompts, call, seeds=None):
    G = cfg.group_size

    def sample_round(prompt_list) -> Rollout:
        return generate(
            policy, tokenizer, list(prompt_list), max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature, num_samples=G, generator=generator,
        )  # fmt: skip

    if not cfg.dynamic_sampling:
        rollout = (
            sample_round(prompts)
            if seeds is None
            else sample_per_prompt(policy, tokenizer, prompts, seeds, cfg)
        )
        rewards = check_reward_output(call(reward_fn, "reward function", rollout), len(rollout), reward_fn)
        frac = all_equal_fraction(rewards, G)
        n = len(prompts)
        info = {
            "groups_generated": n,
            "groups_kept": n - round(frac * n),
            "rounds": 1,
            "frac_all_equal": frac,
        }
        return rollout, rewards, info
    first = [list(prompts)]

    def next_round(n: int) -> Rollout:
        return sample_round(first.pop() if first else call(sample_prompts, "sample_prompts", n))

    rounds = cfg.max_resample_rounds if sample_prompts is not None else 0
    return dynamic_sample(next_round, reward_fn, len(prompts), G, rounds, tokenizer.pad_token_id, call)


def grpo_step(
    policy,
    ref_model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    prompts: Sequence[str],
    reward_fn: Callable[[Rollout], torch.Tensor],
    cfg: GRPOConfig,
    generator: torch.Generator | None = None,
    sample_prompts: Callable[[int], list[str]] | None = None,
    call: Callable = lambda fn, role, *a: fn(*a),
    seeds: Sequence[int] | None = None,
) -> dict:
    """One GRPO step: sample G completions per prompt, score, advantages, ``num_iterations`` updates.

    Args:
        policy: the causal LM being trained (策略模型); ref_model: its frozen copy (参考模型), or None if
            ``cfg.beta == 0`` (given with ``beta == 0``, it is only used to report the KL).
        prompts: ``n_prompts`` prompt strings; reward_fn: ``Rollout -> (n_prompts * G,)`` float rewards.
        generator: a ``torch.Generator`` on the policy's device for reproducible sampling.
        sample_prompts: ``n -> n fresh prompts``, used by dynamic sampling for its extra rounds.
        call: how user functions are called (``train_grpo`` passes :func:`rlcourse.checks.call_user`).
        seeds: one sampling seed per prompt (:func:`prompt_seeds`); then each group is sampled with its own
            generator (:func:`sample_per_prompt`) instead of ``generator``. ``train_grpo`` passes them under a
            process group, where this step also runs data-parallel (see the module docstring).

    Returns:
        a dict of floats: ``reward`` (mean), ``frac_all_equal`` (of every group generated), ``kl`` (masked
        token mean of k3, TRL's ``kl``), ``kl_seq`` (mean over completions of the summed ``logp - ref_logp``),
        ``entropy`` (masked token mean, before the update, TRL's ``entropy``), ``loss``, ``clipfrac`` (tokens with
        ``|ratio - 1| > clip_eps``, CleanRL's, as :mod:`rlcourse.ppo`), ``clip_ratio_region`` (tokens whose
        clip is active, TRL's ``clip_ratio/region_mean``; for CISPO its ``cispo_clip_ratio``), ``length`` (mean completion tokens),
        ``frac_truncated``, ``grad_norm``, ``groups_generated``, ``groups_kept``, ``sample_rounds``; and
        ``rollout`` / ``rewards`` (the batch trained on) for inspection.
    """
    data_parallel = distributed.is_active()
    if data_parallel:
        check_data_parallel(cfg, distributed.world()[1])
    rollout, rewards, info = _sample(
        policy, tokenizer, prompts, reward_fn, cfg, generator, sample_prompts, call, seeds
    )
    advantages = _advantages(rewards, cfg)
    P = rollout.prompt_length
    ids, attn = rollout.input_ids, rollout.attention_mask
    mask = shift_mask(rollout.completion_mask)[:, P - 1 :]  # (B, C): completion columns only
    if cfg.mask_truncated_completions:
        mask = mask_truncated_completions(mask, rollout.finished)

    def crop(x: torch.Tensor) -> torch.Tensor:
        return x[:, P - 1 :]

    with torch.no_grad():
        ref_logp = (
            crop(logprobs_and_entropy(ref_model, ids, attn, cfg.temperature)[0])
            if ref_model is not None
            else None
        )
        old_logp = (
            crop(logprobs_and_entropy(policy, ids, attn, cfg.temperature)[0])
            if cfg.num_iterations > 1
            else None
        )
    m = mask.float()
    has_tokens = bool(m.sum() > 0)  # this rank's batch
    # every rank must take part in every update while ANY rank has tokens (else the all-reduce waits forever)
    any_tokens = distributed.all_reduce_sum(float(has_tokens)) > 0 if data_parallel else has_tokens
    scale = global_loss_scale(cfg.loss_type, m) if data_parallel else 1.0
    nan = float("nan")
    stats = {"loss": nan, "grad_norm": nan, "clipfrac": nan, "clip_ratio_region": nan, "entropy": nan}
    if any_tokens:
        for it in range(cfg.num_iterations):
            optimizer.zero_grad(set_to_none=True)
            if has_tokens:
                logp, entropy = (crop(x) for x in logprobs_and_entropy(policy, ids, attn, cfg.temperature))
                if it == 0:
                    stats["entropy"] = ((entropy * m).sum() / m.sum()).item()
                old = logp.detach() if old_logp is None else old_logp
                loss = grpo_loss(
                    logp, old, ref_logp, advantages, mask, cfg.clip_eps, cfg.beta, cfg.loss_type,
                    cfg.clip_eps_high, cfg.max_new_tokens, cfg.importance_sampling_level, cfg.delta,
                )  # fmt: skip
                (loss * scale if data_parallel else loss).backward()
            distributed.all_reduce_grads(policy.parameters())  # data parallel: sum over ranks; alone: nothing
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm, foreach=True)
            optimizer.step()
        stats["grad_norm"] = float(grad_norm)
    if has_tokens and any_tokens:
        with torch.no_grad():
            ratio = importance_ratio(logp.detach(), old, mask, cfg.importance_sampling_level).expand_as(m)
            a = advantages.unsqueeze(1)
            eps_high = cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high
            if cfg.loss_type == "cispo":
                region = (ratio > eps_high) & (a > 0)
            else:
                region = ((ratio < 1 - cfg.clip_eps) & (a < 0)) | ((ratio > 1 + eps_high) & (a > 0))
            outside = (ratio - 1).abs() > cfg.clip_eps  # CleanRL's clipfrac, comparable with rlcourse.ppo
            stats.update(
                loss=loss.item(),
                clipfrac=((outside.float() * m).sum() / m.sum()).item(),
                clip_ratio_region=((region.float() * m).sum() / m.sum()).item(),
            )
    stats.update(
        reward=rewards.mean().item(),
        frac_all_equal=info["frac_all_equal"],
        groups_generated=info["groups_generated"],
        groups_kept=info["groups_kept"],
        sample_rounds=info["rounds"],
        length=rollout.completion_lengths.float().mean().item(),
        frac_truncated=1.0 - rollout.finished.float().mean().item(),
        kl=float("nan"),
        kl_seq=float("nan"),
    )
    if ref_logp is not None and has_tokens:
        lp = logp.detach()
        stats["kl"] = ((kl_k3(lp, ref_logp) * m).sum() / m.sum()).item()
        stats["kl_seq"] = ((lp - ref_logp) * m).sum(-1).mean().item()
    if data_parallel:
        stats.update(global_stats(stats, scale, m, len(rollout), info["groups_generated"]))
    stats["rollout"], stats["rewards"] = rollout, rewards
    return stats
