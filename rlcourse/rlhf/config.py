"""The hyperparameters of PPO for a language model (chapter 07), checked when the config is built."""

from __future__ import annotations

from dataclasses import dataclass

from rlcourse.checks import check_int, check_number

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
"""What :func:`rlcourse.rlhf.train_ppo`'s history holds, one entry per batch (chapter 10 reads it)."""


@dataclass
class RLHFConfig:
    """Hyperparameters of PPO for an LM (TRL's PPO defaults where marked; tuned for the tiny model otherwise).

    Every field is checked in ``__post_init__``: a bad value fails here, when the config is built, with
    a message naming the field, the value, the allowed range and a fix -- never after training started.
    """

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
        1.0  # subtracted from the score of rows without <eos> (TRL: None, off)
    )
    seed: int = 0  # seeds prompt choice and sampling

    def __post_init__(self) -> None:
        own = "RLHFConfig"
        check_int("total_batches", self.total_batches, low=1, owner=own, fix="use e.g. 30")
        check_int("batch_size", self.batch_size, low=1, owner=own, fix="use e.g. 32 prompts per batch")
        check_int("max_new_tokens", self.max_new_tokens, low=1, owner=own, fix="use e.g. 48")
        check_number("temperature", self.temperature, low=0, low_open=True, owner=own, fix="use 0.7 (TRL)")
        check_number("kl_coef", self.kl_coef, low=0, owner=own, fix="use 0.05 (TRL), or 0 for no penalty")
        check_number("gamma", self.gamma, low=0, high=1, owner=own, fix="RLHF uses 1.0")
        check_number("lam", self.lam, low=0, high=1, owner=own, fix="use 0.95 (TRL)")
        check_number("clip_eps", self.clip_eps, low=0, low_open=True, owner=own, fix="use 0.2 (TRL)")
        check_number("value_clip_eps", self.value_clip_eps, low=0, low_open=True, owner=own, fix="use 0.2")
        check_number("vf_coef", self.vf_coef, low=0, owner=own, fix="use 0.1 (TRL)")
        check_int("ppo_epochs", self.ppo_epochs, low=1, owner=own, fix="use 4 (TRL)")
        check_int(
            "minibatches",
            self.minibatches,
            low=1,
            high=self.batch_size if isinstance(self.batch_size, int) else None,
            owner=own,
            fix=f"use 1 (TRL), or at most batch_size = {self.batch_size}",
        )
        check_number(
            "lr", self.lr, low=0, low_open=True, owner=own, fix="use 3e-4 for the course's tiny models"
        )
        check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True, owner=own, fix="use 1.0")
        if not isinstance(self.whiten_advantages, bool):
            raise TypeError(f"{own}.whiten_advantages must be True or False, got {self.whiten_advantages!r}")
        if self.missing_eos_penalty is not None:
            check_number(
                "missing_eos_penalty",
                self.missing_eos_penalty,
                low=0,
                owner=own,
                fix="use 1.0, or None for off",
            )
        check_int("seed", self.seed, low=0, owner=own, fix="use a non-negative integer such as 0")
