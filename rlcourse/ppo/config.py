"""PPO's settings and what a run measured: :class:`PPOConfig`, :class:`PPOResult` (chapter 04)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlcourse.checks import check_choice, check_int, check_number
from rlcourse.policies import CategoricalPolicy, ValueNet

__all__ = ["PPOConfig", "PPOResult"]


@dataclass
class PPOConfig:
    """Hyperparameters of :func:`rlcourse.ppo.train_ppo`. Defaults: rl-zoo's tuned CartPole-v1
    settings for Stable-Baselines3. Every field is checked when the config is built."""

    env_id: str = "CartPole-v1"
    """a gymnasium environment with a discrete action space and a flat observation"""
    seed: int = 0
    """seeds torch and the environments (env i gets seed + i)"""
    total_timesteps: int = 100_000
    """env steps (all environments together); the lr and clip schedules reach 0 here"""
    num_envs: int = 8
    """environments stepped side by side"""
    num_steps: int = 32
    """steps per environment per rollout; one rollout = num_envs * num_steps transitions"""
    minibatch_size: int = 256
    """transitions per gradient step"""
    update_epochs: int = 20
    """passes over each rollout"""
    learning_rate: float = 1e-3
    """Adam's step size (Adam eps = 1e-5, as CleanRL and SB3)"""
    anneal_lr: bool = True
    """decay the learning rate linearly to 0 at total_timesteps"""
    gamma: float = 0.98
    """discount factor"""
    gae_lambda: float = 0.8
    """GAE lambda: 0 = one-step TD, 1 = Monte Carlo"""
    objective: str = "clip"
    """'clip' (PPO-clip) or 'kl_penalty' (PPO-penalty with an adaptive beta)"""
    clip_eps: float = 0.2
    """clipping range of the ratio (and, never annealed, of the value change when clip_value is on)"""
    anneal_clip: bool = True
    """decay the ratio's clip_eps linearly to 0 like the learning rate (rl-zoo's lin_0.2)"""
    target_kl: float | None = None
    """stop an update's epochs early once the approx KL of the last minibatch exceeds this
    (CleanRL's target_kl, checked after each epoch; None: always run update_epochs)"""
    kl_target: float = 0.01
    """PPO-penalty: the KL per update that the adaptive beta aims at"""
    beta_init: float = 1.0
    """PPO-penalty: the starting KL coefficient"""
    clip_value: bool = False
    """clip the value function's change to +-clip_eps per update, with clip_eps not annealed (CleanRL: on;
    SB3: off)"""
    vf_coef: float = 1.0
    """weight of the value loss 0.5 * (V - R)^2; 1.0 here equals SB3's vf_coef 0.5 on (V - R)^2"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    max_grad_norm: float = 0.5
    """clip the global gradient norm to this"""
    norm_adv: bool = True
    """normalise advantages to mean 0, std 1 in each minibatch"""
    truncation: str = "bootstrap"
    """time-limit truncation: 'bootstrap' adds gamma * V(final obs) to the last reward (SB3);
    'cleanrl' treats it like termination (no bootstrap)"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the (separate) policy and value networks"""
    target_return: float | None = None
    """stop early once the mean of the last `window` episode returns reaches this (None: never)"""
    window: int = 20
    """episodes in the moving mean of target_return and PPOResult.last_mean"""

    def __post_init__(self) -> None:
        o = "PPOConfig"
        if not isinstance(self.env_id, str) or not self.env_id:
            raise TypeError(f"{o}.env_id must be a gymnasium id such as 'CartPole-v1', got {self.env_id!r}")
        check_int("seed", self.seed, low=0, owner=o, fix="use a non-negative integer such as 0")
        check_int("num_envs", self.num_envs, low=1, owner=o, fix="use e.g. 8")
        check_int("num_steps", self.num_steps, low=1, owner=o, fix="use e.g. 32")
        rollout = self.num_envs * self.num_steps
        check_int("update_epochs", self.update_epochs, low=1, owner=o, fix="use e.g. 10")
        check_int("window", self.window, low=1, owner=o, fix="use e.g. 20")
        check_int(
            "minibatch_size", self.minibatch_size, low=1, high=rollout, owner=o,
            fix=f"one rollout holds num_envs * num_steps = {rollout} transitions; use at most that",
        )  # fmt: skip
        check_int(
            "total_timesteps", self.total_timesteps, low=rollout, owner=o,
            fix=f"train for at least one rollout (num_envs * num_steps = {rollout} env steps), "
            "or lower num_envs / num_steps",
        )  # fmt: skip
        check_number(
            "learning_rate", self.learning_rate, low=0.0, low_open=True, owner=o, fix="use e.g. 3e-4"
        )
        check_number("gamma", self.gamma, low=0.0, high=1.0, owner=o, fix="use e.g. 0.99")
        check_number("gae_lambda", self.gae_lambda, low=0.0, high=1.0, owner=o, fix="use e.g. 0.95")
        check_choice("objective", self.objective, ("clip", "kl_penalty"), owner=o)
        check_choice("truncation", self.truncation, ("bootstrap", "cleanrl"), owner=o)
        # clip_eps > 0, and the linear anneal multiplies it by a fraction in [0, 1]: it never goes below 0
        check_number("clip_eps", self.clip_eps, low=0.0, low_open=True, owner=o, fix="use e.g. 0.2")
        if self.target_kl is not None:
            check_number(
                "target_kl", self.target_kl, low=0.0, low_open=True, owner=o, fix="use e.g. 0.01, or None"
            )
        check_number("kl_target", self.kl_target, low=0.0, low_open=True, owner=o, fix="use e.g. 0.01")
        check_number("beta_init", self.beta_init, low=0.0, low_open=True, owner=o, fix="use e.g. 1.0")
        check_number("vf_coef", self.vf_coef, low=0.0, owner=o, fix="use e.g. 1.0")
        check_number("ent_coef", self.ent_coef, low=0.0, owner=o, fix="use 0.0 (no bonus) or e.g. 0.01")
        check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True, owner=o, fix="use e.g. 0.5")
        if self.target_return is not None:
            check_number("target_return", self.target_return, owner=o, fix="use e.g. 475.0, or None")
        for name in ("anneal_lr", "anneal_clip", "clip_value", "norm_adv"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{o}.{name} must be True or False, got {getattr(self, name)!r}")
        hidden = self.hidden
        if not isinstance(hidden, (tuple, list)) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
        ):
            raise ValueError(
                f"{o}.hidden must be a tuple of layer sizes >= 1 such as (64, 64), got {hidden!r}"
            )
        self.hidden = tuple(hidden)


@dataclass
class PPOResult:
    """What :func:`rlcourse.ppo.train_ppo` measured (the run's history). Per-episode lists are in the
    order episodes ended; per-update lists have one entry per completed update."""

    policy: CategoricalPolicy
    value_fn: ValueNet
    episode_returns: list[float] = field(default_factory=list)
    """undiscounted return of every finished episode"""
    episode_steps: list[int] = field(default_factory=list)
    """env steps taken (all envs) when each episode ended"""
    kl: list[float] = field(default_factory=list)
    """per update: approx KL(pi_old || pi_new) over the rollout after the update"""
    clip_fraction: list[float] = field(default_factory=list)
    """per update: fraction of the rollout whose ratio ended outside [1 - eps, 1 + eps]"""
    epochs: list[int] = field(default_factory=list)
    """per update: epochs run (fewer than update_epochs when target_kl stopped the update)"""
    beta: list[float] = field(default_factory=list)
    """per update: the KL coefficient used (PPO-penalty; 0 for PPO-clip)"""
    value_loss: list[float] = field(default_factory=list)
    """per update: 0.5 * mean (V - R)^2 over the rollout after the update"""
    explained_variance: list[float] = field(default_factory=list)
    """per update: 1 - Var(R - V) / Var(R) of the critic at collection time (1 = perfect, <= 0 = useless)"""
    env_steps: int = 0
    """env steps taken in total"""
    wall_time: float = 0.0
    """seconds spent in train_ppo"""
    solved_step: int | None = None
    """env steps when the mean of the last `window` returns first reached target_return"""
    solved_time: float | None = None
    """seconds when that happened"""

    def last_mean(self, n: int = 20) -> float:
        """Mean return of the last ``n`` finished episodes (nan if there are none)."""
        return float(np.mean(self.episode_returns[-n:])) if self.episode_returns else float("nan")

    def steps_to_reach(self, target: float, n: int = 20) -> int | None:
        """Env steps when the mean of the last ``n`` returns first reached ``target`` (None: never)."""
        returns = np.asarray(self.episode_returns, dtype=float)
        if returns.size < n:
            return None
        total = np.cumsum(np.insert(returns, 0, 0.0))
        means = (total[n:] - total[:-n]) / n  # means[k]: episodes k .. k+n-1
        hits = np.flatnonzero(means >= target)
        return int(self.episode_steps[hits[0] + n - 1]) if hits.size else None
