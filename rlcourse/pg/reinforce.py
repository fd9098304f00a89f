"""The REINFORCE trainer (chapter 02): config, history and the training loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlcourse.checks import TrainingError, call_user, check_int, check_number, interrupted
from rlcourse.device import get_device
from rlcourse.pg.returns import full_return, reinforce_loss, reward_to_go
from rlcourse.pg.rollouts import EpisodeBatch, collect_episodes, fit_value, make_envs
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.progress import progress_bar


def check_bool(name: str, value: Any, owner: str) -> bool:
    """Refuse anything but True/False (a string "False" would otherwise count as true)."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_common_fields(cfg: Any, owner: str) -> None:
    """Checks shared by the toy-track configs (``ReinforceConfig``, ``TRPOConfig``)."""
    if not isinstance(cfg.env_id, str) or not cfg.env_id:
        raise ValueError(f"{owner}.env_id must be a gymnasium id such as 'CartPole-v1', got {cfg.env_id!r}")
    check_int("seed", cfg.seed, low=0, owner=owner, fix="use a non-negative integer such as 0")
    check_int("iterations", cfg.iterations, low=1, owner=owner, fix="use at least one policy update")
    check_int("episodes_per_batch", cfg.episodes_per_batch, low=1, owner=owner, fix="use e.g. 16")
    check_number("gamma", cfg.gamma, low=0.0, high=1.0, owner=owner, fix="use e.g. 0.99")
    if isinstance(cfg.hidden, (str, bytes)) or not hasattr(cfg.hidden, "__iter__"):
        raise TypeError(f"{owner}.hidden must be a tuple of layer sizes such as (32,), got {cfg.hidden!r}")
    for i, h in enumerate(cfg.hidden):
        check_int(f"hidden[{i}]", h, low=1, owner=owner, fix="layer sizes are positive integers, e.g. (32,)")
    check_number("vf_lr", cfg.vf_lr, low=0.0, low_open=True, owner=owner, fix="use e.g. 1e-2")
    check_int("vf_iters", cfg.vf_iters, low=1, owner=owner, fix="use e.g. 20")
    if cfg.device is not None:
        try:
            torch.device(cfg.device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(
                f"{owner}.device must be None or a torch device string such as 'cpu' or 'cuda', got {cfg.device!r}"
            ) from e


@dataclass
class ReinforceConfig:
    """Settings of :func:`train_reinforce`; every field is checked when the config is built."""

    env_id: str = "CartPole-v1"
    """a gymnasium environment with a discrete action space"""
    seed: int = 0
    """seeds torch (network init, action sampling) and the environments"""
    iterations: int = 60
    """number of policy updates (one batch of episodes each)"""
    episodes_per_batch: int = 16
    """episodes collected per update (one per vectorised environment)"""
    gamma: float = 0.99
    """discount factor"""
    reward_to_go: bool = True
    """weight log pi(a_t|s_t) by the reward-to-go G_t (True) or by the episode's full return G_0"""
    use_baseline: bool = False
    """subtract a learned V(s_t) from the weight (advantage = G_t - V(s_t))"""
    normalize_weights: bool = False
    """rescale the weights to mean 0, std 1 per batch (off here: that is itself a baseline)"""
    lr: float = 1e-2
    """Adam learning rate of the policy"""
    hidden: tuple[int, ...] = (32,)
    """hidden layer sizes of the policy and value MLPs"""
    vf_lr: float = 1e-2
    """Adam learning rate of the value baseline"""
    vf_iters: int = 20
    """full-batch value-regression steps per update"""
    device: str | None = None
    """torch device; None = follow rlcourse.device.get_device()"""

    def __post_init__(self) -> None:
        owner = "ReinforceConfig"
        check_common_fields(self, owner)
        for name in ("reward_to_go", "use_baseline", "normalize_weights"):
            check_bool(name, getattr(self, name), owner)
        check_number("lr", self.lr, low=0.0, low_open=True, owner=owner, fix="use e.g. 1e-2")


@dataclass
class TrainHistory:
    """What a trainer logged: one entry per finished episode and one per update."""

    episode_returns: list[float] = field(default_factory=list)
    episode_end_steps: list[int] = field(default_factory=list)
    update_mean_return: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, batch: EpisodeBatch, steps: int) -> int:
        """Log a batch's episodes and mean return; returns the env-step count after the batch."""
        for n, r in zip(batch.lengths, batch.returns, strict=True):
            steps += n
            self.episode_returns.append(r)
            self.episode_end_steps.append(steps)
        self.update_mean_return.append(float(np.mean(batch.returns)))
        return steps


def policy_weights(batch: EpisodeBatch, cfg: ReinforceConfig, value_fn: ValueNet | None) -> torch.Tensor:
    """The weight Psi_t of every step ``(T,)``, as chosen by ``cfg`` (see :class:`ReinforceConfig`).

    Like Spinning Up and CleanRL, the weight is G_t, not gamma^t G_t: with gamma < 1 this is not the
    exact gradient of the discounted objective (chapter 02, section 2, measures the difference).
    """
    ret = reward_to_go if cfg.reward_to_go else full_return
    w = ret(batch.rewards, batch.dones, cfg.gamma)
    if value_fn is not None:
        with torch.no_grad():
            w = w - value_fn(batch.obs)
    if cfg.normalize_weights:
        w = (w - w.mean()) / (w.std() + 1e-8)
    return w


def train_reinforce(
    cfg: ReinforceConfig,
    progress: bool = False,
    *,
    callback: Callable[[int, TrainHistory], Any] | None = None,
) -> tuple[CategoricalPolicy, TrainHistory]:
    """Train REINFORCE as set by ``cfg``; returns the policy and a :class:`TrainHistory`.

    ``callback(step, history)``, if given, is called after every update (``step`` = number of
    completed updates, from 1). If anything raises mid-run (the callback included), a
    :class:`rlcourse.checks.TrainingError` carries the completed steps' history (``err.history``);
    Ctrl-C (KeyboardInterrupt) stops the run and returns the policy and history so far.
    """
    if not isinstance(cfg, ReinforceConfig):
        raise TypeError(f"cfg must be a ReinforceConfig, got {type(cfg).__name__}")
    device = torch.device(cfg.device) if cfg.device else get_device()
    torch.manual_seed(cfg.seed)
    envs = make_envs(cfg.env_id, cfg.episodes_per_batch)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, cfg.hidden).to(device)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    value_fn = ValueNet(obs_dim, cfg.hidden).to(device) if cfg.use_baseline else None
    vf_opt = torch.optim.Adam(value_fn.parameters(), lr=cfg.vf_lr) if value_fn is not None else None
    hist, steps, done, t0 = TrainHistory(), 0, 0, time.perf_counter()
    try:
        for i in progress_bar(range(cfg.iterations), progress, f"REINFORCE seed {cfg.seed}"):
            batch = collect_episodes(envs, policy, seed=cfg.seed if i == 0 else None)
            # 1) policy step on the weights computed with the *current* baseline
            weights = policy_weights(batch, cfg, value_fn)
            loss = reinforce_loss(policy.log_prob(batch.obs, batch.actions), weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            # 2) then refit the baseline to this batch's rewards-to-go
            if value_fn is not None:
                targets = reward_to_go(batch.rewards, batch.dones, cfg.gamma)
                fit_value(value_fn, vf_opt, batch.obs, targets, cfg.vf_iters)
            steps = hist.record(batch, steps)  # logged once the update is complete
            done = i + 1
            if callback is not None:
                call_user(callback, "callback", done, hist)
    except KeyboardInterrupt:
        interrupted("train_reinforce", done)
    except Exception as e:
        raise TrainingError("train_reinforce", done, hist, e) from e
    finally:
        envs.close()
        hist.seconds = time.perf_counter() - t0
    return policy, hist
