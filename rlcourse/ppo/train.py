"""The PPO trainer for discrete gymnasium environments: :func:`train_ppo` (chapter 04).

CleanRL's single-file PPO, with Stable-Baselines3's choices where they differ (see ``PPOConfig``).
Read :func:`train_ppo` top to bottom: a loop of rollout (with GAE) -> learn -> diagnose, with one
short function per step. Plain ``torch.optim.Adam`` (its own ``fused`` implementation) and
``nn.utils.clip_grad_norm_`` do the update.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlcourse.checks import TrainingError, call_user, interrupted
from rlcourse.device import get_device
from rlcourse.gae import compute_gae
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.ppo.config import PPOConfig, PPOResult
from rlcourse.ppo.losses import (
    adaptive_kl_beta,
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    kl_penalty_loss,
)
from rlcourse.progress import progress_bar

__all__ = ["ADAM_OPTIONS", "make_vector_env", "train_ppo"]

ADAM_OPTIONS: dict[str, Any] = {"fused": True}
"""Options of ``torch.optim.Adam`` in :func:`train_ppo`: ``fused=True`` (one kernel per step) was the fastest of
Adam's own implementations per env step in ``benchmarks/ppo_step.py``."""


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of ``env_id`` stepped in one process. When an episode ends, the env resets
    in the same step and ``info["final_obs"]`` holds the last observation (needed to bootstrap)."""
    try:
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    except gym.error.Error as err:
        raise ValueError(f"gymnasium cannot make env_id={env_id!r}: {err}") from None
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        envs.close()
        raise ValueError(f"train_ppo needs a discrete action space; {env_id} has {envs.single_action_space}")
    if len(envs.single_observation_space.shape or ()) != 1:
        envs.close()
        raise ValueError(
            f"train_ppo needs flat (1-D) observations; {env_id} has {envs.single_observation_space}"
        )
    return envs


def train_ppo(
    cfg: PPOConfig,
    device: torch.device | str | None = None,
    progress: bool = False,
    callback: Callable[[int, PPOResult], Any] | None = None,
) -> PPOResult:
    """Train a policy and a value function with PPO on ``cfg.env_id``; see :class:`PPOConfig`.

    ``device`` holds the networks and the rollout tensors (default: ``rlcourse.device.get_device()``);
    the environments always step in NumPy. ``progress`` shows a tqdm bar over the updates.
    ``callback(step, history)``, if given, is called after every update (``step`` = completed updates,
    from 1; ``history`` = the :class:`PPOResult` so far). If anything raises mid-run (the callback
    included), a :class:`rlcourse.checks.TrainingError` carries the completed updates' history
    (``err.history``); Ctrl-C (KeyboardInterrupt) stops the run and returns the history so far.
    """
    if not isinstance(cfg, PPOConfig):
        raise TypeError(f"cfg must be a PPOConfig, got {type(cfg).__name__}; build one with PPOConfig(...)")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(step, history), got {callback!r}")
    device = torch.device(device) if device is not None else get_device(set_threads=False)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    envs = make_vector_env(cfg.env_id, cfg.num_envs)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, cfg.hidden).to(device)
    value_fn = ValueNet(obs_dim, cfg.hidden).to(device)
    params = [*policy.parameters(), *value_fn.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5, **ADAM_OPTIONS)
    res = PPOResult(policy, value_fn)
    state = _EnvState(envs.reset(seed=cfg.seed)[0], np.zeros(cfg.num_envs))
    beta, done = cfg.beta_init, 0
    bar = progress_bar(range(cfg.total_timesteps // (cfg.num_envs * cfg.num_steps)), progress, "PPO updates")
    try:
        for _update in bar:
            # 1. Rollout: num_steps steps of num_envs environments with the current policy.
            batch = collect_rollout(envs, state, policy, value_fn, cfg, res, start, device)
            if batch is None:  # target_return reached during the rollout
                break
            # 2. Learn: several epochs of minibatch gradient steps on the same rollout.
            frac = max(0.0, 1.0 - res.env_steps / cfg.total_timesteps)  # linear schedules, as SB3's lin_<x>
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate * (frac if cfg.anneal_lr else 1.0)
            clip_eps = cfg.clip_eps * (frac if cfg.anneal_clip else 1.0)  # >= 0: frac is in [0, 1]
            epochs = learn(batch, policy, value_fn, optimizer, params, cfg, clip_eps, beta)
            # 3. Diagnose: how far the update moved the policy; PPO-penalty's beta for the next update.
            kl = record_diagnostics(batch, policy, value_fn, res, clip_eps, epochs)
            res.beta.append(beta if cfg.objective == "kl_penalty" else 0.0)
            if cfg.objective == "kl_penalty":
                beta = adaptive_kl_beta(beta, kl, cfg.kl_target)
            done += 1
            if progress:
                bar.set_postfix(ret=f"{res.last_mean(cfg.window):.0f}", kl=f"{kl:.4f}")
            if callback is not None:
                call_user(callback, "callback", done, res)
    except KeyboardInterrupt:
        interrupted("train_ppo", done)
    except Exception as e:
        raise TrainingError("train_ppo", done, res, e) from e
    finally:
        envs.close()
        res.wall_time = time.perf_counter() - start
    return res


class _EnvState:
    """What carries over from one rollout to the next: the current observations and episode returns."""

    def __init__(self, obs: np.ndarray, ep_return: np.ndarray) -> None:
        self.obs, self.ep_return = obs, ep_return


class Batch:
    """One rollout flattened to ``B = num_steps * num_envs`` transitions, on the training device.

    obs ``(B, obs_dim)``, actions ``(B,)``, and at collection time: logp_old, values ``(B,)``;
    from GAE: advantages, returns ``(B,)``.
    """

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.obs, self.actions = tensors["obs"], tensors["actions"]
        self.logp_old, self.values = tensors["logp_old"], tensors["values"]
        self.advantages, self.returns = tensors["advantages"], tensors["returns"]


def collect_rollout(
    envs: gym.vector.SyncVectorEnv,
    state: _EnvState,
    policy: CategoricalPolicy,
    value_fn: ValueNet,
    cfg: PPOConfig,
    res: PPOResult,
    start: float,
    device: torch.device,
) -> Batch | None:
    """Step the environments ``cfg.num_steps`` times, then compute log-probs, values and GAE.

    Returns None if ``cfg.target_return`` was reached during the rollout (the run stops there).
    """
    T, N, obs_dim = cfg.num_steps, cfg.num_envs, envs.single_observation_space.shape[0]
    obs_buf = np.zeros((T, N, obs_dim), dtype=np.float32)  # NumPy, the environments' language
    act_buf, rew_buf = np.zeros((T, N), dtype=np.int64), np.zeros((T, N), dtype=np.float32)
    done_buf = np.zeros((T, N), dtype=np.float32)
    truncated_at = []  # (t, env index, final observation) of time-limit truncations
    for t in range(T):
        obs_buf[t] = state.obs
        action = policy.act(torch.as_tensor(state.obs, dtype=torch.float32, device=device)).cpu().numpy()
        state.obs, reward, terminated, truncated, info = envs.step(action)
        act_buf[t], rew_buf[t], done_buf[t] = action, reward, terminated | truncated
        res.env_steps += N
        state.ep_return += reward
        for i in np.flatnonzero(terminated | truncated):
            res.episode_returns.append(float(state.ep_return[i]))
            res.episode_steps.append(res.env_steps)
            state.ep_return[i] = 0.0
            if truncated[i] and not terminated[i]:
                truncated_at.append((t, i, info["final_obs"][i]))
            if _reached_target(res, cfg):
                res.solved_step, res.solved_time = res.env_steps, time.perf_counter() - start
                return None

    # Evaluate the whole rollout at once (the policy did not change while collecting it).
    obs = torch.tensor(obs_buf, device=device).reshape(T * N, obs_dim)
    actions = torch.tensor(act_buf, device=device).reshape(T * N)
    rewards, dones = torch.tensor(rew_buf, device=device), torch.tensor(done_buf, device=device)
    with torch.no_grad():
        logp_old = policy.log_prob(obs, actions)
        values = value_fn(obs).reshape(T, N)
        last_value = value_fn(torch.as_tensor(state.obs, dtype=torch.float32, device=device))
        if cfg.truncation == "bootstrap" and truncated_at:
            # the episode did not end, the clock did: add what the final state was still worth
            ts, idx, final_obs = zip(*truncated_at, strict=True)
            final_obs = torch.as_tensor(np.stack(final_obs), dtype=torch.float32, device=device)
            rewards[list(ts), list(idx)] += cfg.gamma * value_fn(final_obs)
        advantages, returns = compute_gae(rewards, values, dones, last_value, cfg.gamma, cfg.gae_lambda)
    res.explained_variance.append((1 - (returns - values).var() / returns.var()).item())
    return Batch(
        obs=obs, actions=actions, logp_old=logp_old, values=values.flatten(),
        advantages=advantages.flatten(), returns=returns.flatten(),
    )  # fmt: skip


def learn(
    batch: Batch,
    policy: CategoricalPolicy,
    value_fn: ValueNet,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    cfg: PPOConfig,
    clip_eps: float,
    beta: float,
) -> int:
    """``cfg.update_epochs`` passes of shuffled minibatch steps over ``batch``; returns the epochs run
    (fewer when ``cfg.target_kl`` stops the update: CleanRL checks the last minibatch's KL after each epoch)."""
    size = batch.obs.shape[0]
    for epoch in range(1, cfg.update_epochs + 1):
        if cfg.minibatch_size == size:  # one minibatch = the whole rollout: nothing to shuffle
            minibatches = [slice(None)]
        else:
            minibatches = torch.randperm(size, device=batch.obs.device).split(cfg.minibatch_size)
        for mb in minibatches:
            logp = policy.log_prob(batch.obs[mb], batch.actions[mb])
            adv = batch.advantages[mb]
            if cfg.norm_adv:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # per minibatch, as SB3 and CleanRL
            if cfg.objective == "clip":
                pg_loss = clipped_surrogate_loss(logp, batch.logp_old[mb], adv, clip_eps)
            else:
                pg_loss = kl_penalty_loss(logp, batch.logp_old[mb], adv, beta)
            v = value_fn(batch.obs[mb])
            if cfg.clip_value:  # CleanRL: the value's range is clip_eps, not annealed
                v_loss = clipped_value_loss(v, batch.values[mb], batch.returns[mb], cfg.clip_eps)
            else:
                v_loss = 0.5 * F.mse_loss(v, batch.returns[mb])
            loss = pg_loss + cfg.vf_coef * v_loss
            if cfg.ent_coef:
                logits = policy(batch.obs[mb])
                entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()
                loss = loss - cfg.ent_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
        if cfg.target_kl is not None:
            with torch.no_grad():  # the KL of the last minibatch, before its step (CleanRL's approx_kl)
                kl = approx_kl(logp.detach(), batch.logp_old[mb]).item()
            if kl > cfg.target_kl:
                return epoch
    return cfg.update_epochs


def record_diagnostics(
    batch: Batch, policy: CategoricalPolicy, value_fn: ValueNet, res: PPOResult, clip_eps: float, epochs: int
) -> float:
    """Append KL, clip fraction, value loss and epochs of the update just made to ``res``; return the KL."""
    with torch.no_grad():
        logp = policy.log_prob(batch.obs, batch.actions)
        kl = approx_kl(logp, batch.logp_old).item()
        res.kl.append(kl)
        res.clip_fraction.append(
            ((logp - batch.logp_old).exp().sub(1).abs() > clip_eps).float().mean().item()
        )
        res.value_loss.append(0.5 * ((value_fn(batch.obs) - batch.returns) ** 2).mean().item())
        res.epochs.append(epochs)
    return kl


def _reached_target(res: PPOResult, cfg: PPOConfig) -> bool:
    return (
        cfg.target_return is not None
        and res.solved_step is None
        and len(res.episode_returns) >= cfg.window
        and res.last_mean(cfg.window) >= cfg.target_return
    )
