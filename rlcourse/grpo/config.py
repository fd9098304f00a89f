"""``GRPOConfig``: the trainer's hyperparameters, checked when the config is built (chapters 08, 11)."""

from __future__ import annotations

from dataclasses import dataclass

from rlcourse.checks import check_choice, check_int, check_number
from rlcourse.grpo.loss import check_loss_options

ADVANTAGE_ESTIMATORS = ("grpo", "rloo")


def _check_bool(name: str, value, owner: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be True or False, got {value!r} ({type(value).__name__})")


@dataclass
class GRPOConfig:
    """Hyperparameters of GRPO and its variants on the tiny LM (TRL ``GRPOConfig`` names in brackets).

    Every field is checked in ``__post_init__``: a bad value fails when the config is built, with a
    message naming the field, the value, the allowed range and a fix.
    """

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
    """weight of the k3 KL to the reference in the loss (DeepSeekMath: 0.04; TRL >= 0.19: 0) [beta]"""
    clip_eps: float = 0.2
    """ratio clip [epsilon]"""
    clip_eps_high: float | None = None
    """upper clip range, DAPO's clip-higher (0.28); for "cispo" the ratio cap (5.0); None = clip_eps [epsilon_high]"""
    delta: float | None = None
    """two-sided clip: cap on the unclipped ratio (INTELLECT-2); None = off [delta]"""
    importance_sampling_level: str = "token"
    """"token" (GRPO) or "sequence" (GSPO: one ratio per completion) [importance_sampling_level]"""
    num_iterations: int = 1
    """gradient steps on each sampled batch (DeepSeekMath's mu; with 1 the ratio is exactly 1) [num_iterations]"""
    loss_type: str = "grpo"
    """"grpo", "bnpo", "dr_grpo", "dapo" or "cispo" (see rlcourse.grpo.loss) [loss_type]"""
    scale_rewards: bool = True
    """divide advantages by the group std (False: Dr. GRPO) [scale_rewards="group" / "none"]"""
    advantage_estimator: str = "grpo"
    """"grpo" (group mean, std if scale_rewards) or "rloo" (leave-one-out baseline; TRL's RLOOTrainer)"""
    mask_truncated_completions: bool = False
    """exclude completions without <eos> from the loss (DAPO) [mask_truncated_completions]"""
    dynamic_sampling: bool = False
    """DAPO: drop all-equal groups and sample more prompts until the batch is full (not in TRL)"""
    max_resample_rounds: int = 3
    """dynamic sampling: extra sampling rounds allowed per step (the cap on extra generation)"""
    eval_every: int = 10
    """evaluate held-out accuracy every this many steps (and after the last); 0 = never"""
    seed: int = 0
    """seeds prompt choice and sampling"""

    def __post_init__(self) -> None:
        own = "GRPOConfig"
        check_int("steps", self.steps, low=1, owner=own, fix="train for at least one step")
        check_int("prompts_per_step", self.prompts_per_step, low=1, owner=own)
        check_int(
            "group_size", self.group_size, low=2, owner=own,
            fix="a group of one has no baseline (its std is undefined); use 8 as chapter 08",
        )  # fmt: skip
        check_int("max_new_tokens", self.max_new_tokens, low=1, owner=own)
        check_number("temperature", self.temperature, low=0, low_open=True, owner=own, fix="sample at 1.0")
        check_number("lr", self.lr, low=0, low_open=True, owner=own, fix="use 1e-4 as chapter 08")
        check_int("warmup_steps", self.warmup_steps, low=0, owner=own)
        check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True, owner=own, fix="use 1.0")
        check_int("num_iterations", self.num_iterations, low=1, owner=own)
        check_loss_options(
            self.clip_eps, self.beta, self.loss_type, self.clip_eps_high, self.importance_sampling_level,
            self.delta, owner=own,
        )  # fmt: skip
        _check_bool("scale_rewards", self.scale_rewards, own)
        check_choice("advantage_estimator", self.advantage_estimator, ADVANTAGE_ESTIMATORS, owner=own)
        if self.advantage_estimator == "rloo" and self.scale_rewards:
            raise ValueError(
                "GRPOConfig.scale_rewards=True divides by the group std, which RLOO does not do "
                "(advantage_estimator='rloo' uses r_i - mean of the other rewards); set scale_rewards=False"
            )
        _check_bool("mask_truncated_completions", self.mask_truncated_completions, own)
        _check_bool("dynamic_sampling", self.dynamic_sampling, own)
        check_int("max_resample_rounds", self.max_resample_rounds, low=0, owner=own)
        check_int("eval_every", self.eval_every, low=0, owner=own, fix="0 turns evaluation off")
        check_int("seed", self.seed, low=0, owner=own)
