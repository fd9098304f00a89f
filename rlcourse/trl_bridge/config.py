"""TRL config fields and their rlcourse counterparts, as data, and TRL configs built from ours (chapter 12)."""

from __future__ import annotations

from rlcourse.checks import check_int

# (TRL field, rlcourse field, how the value maps)
GRPO_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("max_steps", "steps", "same"),
    ("per_device_train_batch_size", "prompts_per_step * group_size", "completions per step (one process)"),
    ("num_generations", "group_size", "same (G)"),
    ("max_completion_length", "max_new_tokens", "same"),
    ("temperature", "temperature", "same; both divide the logits by it before the log-probs"),
    ("learning_rate", "lr", "same"),
    ("lr_scheduler_type", "warmup_steps=0", '"constant" (TRL\'s default "linear" decays to 0)'),
    ("max_grad_norm", "max_grad_norm", "same"),
    ("beta", "beta", "same (TRL's default is 0.0)"),
    ("epsilon", "clip_eps", "same"),
    ("epsilon_high", "clip_eps_high", "None -> epsilon"),
    ("loss_type", "loss_type", 'same (TRL\'s default is "dapo")'),
    ("scale_rewards", "scale_rewards", 'True -> "group", False -> "none"'),
    ("num_iterations", "num_iterations", "same"),
    ("importance_sampling_level", "importance_sampling_level", "same"),
    ("mask_truncated_completions", "mask_truncated_completions", "same"),
    ("use_bias_correction_kl", "(k3, DeepSeekMath)", "False: TRL's True changes the KL gradient"),
    ("seed", "seed", "same number; the random streams differ"),
    ("delta", "delta", "same; set only when not None (two-sided clipping)"),
    ("optim", "make_adam", '"adamw_torch" with weight_decay 0 = Adam'),
    ("weight_decay", "make_adam", "0.0 (the course's Adam has no weight decay)"),
    ("disable_dropout", "policy.eval()", "True"),
    (
        "bf16",
        "(float32)",
        "False here (TRL 1.16 turns it on by default, even on a CPU); pass bf16=True on a GPU",
    ),
    ("activation_checkpointing", "(none)", "False on CPU; True trades compute for memory on a GPU"),
    ("use_cpu", "get_device()", "True on a CPU-only machine"),
)
DPO_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("max_steps", "steps", "same"),
    ("per_device_train_batch_size", "batch_size", "pairs per step (one process)"),
    ("learning_rate", "lr", "same"),
    ("lr_scheduler_type", "(constant)", '"constant"'),
    ("max_grad_norm", "max_grad_norm", "same"),
    ("beta", "beta", "same"),
    ("loss_type", "loss_type", '[loss_type], plus "sft" when nll_weight > 0'),
    ("loss_weights", "nll_weight", "[1.0] or [1.0, nll_weight]"),
    ("precompute_ref_log_probs", "(always)", "True: reference log-probs computed once, before training"),
    ("seed", "seed", "same number; TRL walks the shuffled pairs, we draw with replacement"),
    ("optim", "torch.optim.Adam", '"adamw_torch" with weight_decay 0 = Adam'),
    ("weight_decay", "torch.optim.Adam", "0.0 (the course's Adam has no weight decay)"),
    ("disable_dropout", "policy.eval()", "True"),
    (
        "bf16",
        "(float32)",
        "False here (TRL 1.16 turns it on by default, even on a CPU); pass bf16=True on a GPU",
    ),
    ("activation_checkpointing", "(none)", "False on CPU"),
    ("use_cpu", "get_device()", "True on a CPU-only machine"),
)
_COMMON = dict(
    bf16=False,  # TRL 1.16 resolves bf16=None to True, even on a CPU (autocast: slower there, and not float32)
    lr_scheduler_type="constant",
    optim="adamw_torch",
    weight_decay=0.0,
    disable_dropout=True,
    ddp_find_unused_parameters=False,  # every parameter gets a gradient; True costs an extra graph traversal
    activation_checkpointing=False,  # TRL's default sets transformers' deprecated gradient_checkpointing name
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    disable_tqdm=True,
)


def _use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def trl_grpo_config(cfg, output_dir: str, world_size: int = 1, **overrides):
    """A ``trl.GRPOConfig`` with the settings of an :class:`rlcourse.grpo.GRPOConfig` (see ``GRPO_FIELDS``).

    ``world_size`` processes share the step's ``prompts_per_step * group_size`` completions; it must divide them.
    ``overrides`` are TRL fields set last (e.g. ``bf16=True``, ``use_vllm=True``).
    """
    from trl import GRPOConfig

    from rlcourse.grpo import GRPOConfig as CourseConfig

    if not isinstance(cfg, CourseConfig):
        raise TypeError(f"cfg must be a rlcourse.grpo.GRPOConfig, got {type(cfg).__name__}")
    check_int("world_size", world_size, low=1)
    if cfg.dynamic_sampling or cfg.advantage_estimator != "grpo":
        raise ValueError(
            "trl_grpo_config maps GRPO only: dynamic_sampling=True and advantage_estimator='rloo' have no "
            "GRPOTrainer field (RLOO is TRL's RLOOTrainer); set them to False / 'grpo'"
        )
    if cfg.warmup_steps:
        raise ValueError(
            f"trl_grpo_config: warmup_steps={cfg.warmup_steps} has no exact TRL equivalent (TRL's warm-up starts "
            "from a learning rate of 0, the course's from lr / (warmup_steps + 1)); set warmup_steps=0, or pass "
            "lr_scheduler_type='constant_with_warmup', warmup_steps=... as overrides and accept the difference"
        )
    batch = cfg.prompts_per_step * cfg.group_size
    if batch % world_size:
        raise ValueError(
            f"world_size={world_size} must divide prompts_per_step * group_size = {batch}; "
            "change prompts_per_step or the number of processes"
        )
    kwargs = dict(
        _COMMON,
        output_dir=str(output_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=batch // world_size,
        num_generations=cfg.group_size,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        learning_rate=cfg.lr,
        max_grad_norm=cfg.max_grad_norm,
        beta=cfg.beta,
        epsilon=cfg.clip_eps,
        epsilon_high=cfg.clip_eps_high,
        loss_type=cfg.loss_type,
        scale_rewards="group" if cfg.scale_rewards else "none",
        num_iterations=cfg.num_iterations,
        importance_sampling_level=cfg.importance_sampling_level,
        mask_truncated_completions=cfg.mask_truncated_completions,
        use_bias_correction_kl=False,
        seed=cfg.seed,
        use_cpu=_use_cpu(),
    )
    if cfg.delta is not None:
        kwargs["delta"] = cfg.delta
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def trl_dpo_config(cfg, output_dir: str, **overrides):
    """A ``trl.DPOConfig`` with the settings of an :class:`rlcourse.dpo.DPOConfig` (see ``DPO_FIELDS``)."""
    from trl import DPOConfig

    from rlcourse.dpo import DPOConfig as CourseConfig

    if not isinstance(cfg, CourseConfig):
        raise TypeError(f"cfg must be a rlcourse.dpo.DPOConfig, got {type(cfg).__name__}")
    loss_type, weights = [cfg.loss_type], [1.0]
    if cfg.nll_weight:
        loss_type, weights = [cfg.loss_type, "sft"], [1.0, cfg.nll_weight]
    kwargs = dict(
        _COMMON,
        output_dir=str(output_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        max_grad_norm=cfg.max_grad_norm,
        beta=cfg.beta,
        loss_type=loss_type,
        loss_weights=weights,
        precompute_ref_log_probs=True,
        seed=cfg.seed,
        use_cpu=_use_cpu(),
    )
    kwargs.update(overrides)
    return DPOConfig(**kwargs)
