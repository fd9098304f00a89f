"""Collecting whole episodes and fitting a value baseline (chapter 02).

Layout of a batch: :func:`collect_episodes` runs one complete episode in each of N vectorised
environments and returns the steps *flattened env by env*, shape ``(T,)`` with ``T`` = total steps,
and ``dones[t] == 1`` at the last step of each episode (terminated or truncated by the time limit;
REINFORCE uses Monte Carlo returns, so nothing is bootstrapped).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from rlcourse.checks import check_finite, check_float, check_int
from rlcourse.policies import CategoricalPolicy


@dataclass
class EpisodeBatch:
    """One complete episode per environment, flattened env by env (T = total steps).

    obs ``(T, obs_dim)``, actions ``(T,)`` int64, rewards ``(T,)``, dones ``(T,)`` (1 at each
    episode's last step); ``lengths`` and ``returns`` (undiscounted) have one entry per episode.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    lengths: list[int]
    returns: list[float]

    def episode_slices(self) -> list[slice]:
        """The slice of the flat arrays that holds each episode."""
        ends = np.cumsum(self.lengths)
        return [slice(int(e - n), int(e)) for e, n in zip(ends, self.lengths, strict=True)]


def make_envs(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """``num_envs`` copies of a gymnasium env, stepped together (CartPole has a fast numpy version)."""
    check_int("num_envs", num_envs, low=1, fix="use one environment per episode of a batch, e.g. 16")
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a gymnasium id such as 'CartPole-v1', got {env_id!r}")
    return gym.make_vec(env_id, num_envs=num_envs)


@torch.no_grad()
def collect_episodes(
    envs: gym.vector.VectorEnv, policy: CategoricalPolicy, seed: int | None = None
) -> EpisodeBatch:
    """Run exactly one episode in each of the ``envs.num_envs`` environments with ``policy``.

    All environments are reset (with ``seed`` if given: env i gets ``seed + i``) and stepped
    together; an environment that has finished waits, and its later steps are dropped. Tensors
    are created on the policy's device.
    """
    if seed is not None:
        check_int("seed", seed, low=0, fix="use a non-negative integer, or None for no reseeding")
    device = next(policy.parameters()).device
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    alive = np.ones(n, dtype=bool)
    buf_obs, buf_act, buf_rew, buf_alive, buf_done = [], [], [], [], []
    while alive.any():
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        act = policy.act(obs_t)
        next_obs, rew, term, trunc, _ = envs.step(act.cpu().numpy())
        done = np.logical_or(term, trunc) & alive
        buf_obs.append(obs_t)
        buf_act.append(act)
        buf_rew.append(rew.astype(np.float32))
        buf_alive.append(alive.copy())
        buf_done.append(done)
        alive &= ~done
        obs = next_obs
    # (T_max, N, ...) -> env-major, keep the steps where the env was still in its episode
    keep = torch.as_tensor(np.stack(buf_alive).T, device=device)  # (N, T_max)
    obs_all = torch.stack(buf_obs).transpose(0, 1)[keep]
    act_all = torch.stack(buf_act).transpose(0, 1)[keep]
    rew_all = torch.as_tensor(np.stack(buf_rew).T, device=device)[keep]
    done_all = torch.as_tensor(np.stack(buf_done).T, dtype=torch.float32, device=device)[keep]
    lengths = keep.sum(1).tolist()
    returns = [float(x) for x in np.stack(buf_rew).T.sum(1, where=np.stack(buf_alive).T)]
    return EpisodeBatch(obs_all, act_all, rew_all, done_all, lengths, returns)


def fit_value(
    value_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    targets: torch.Tensor,
    iters: int,
) -> float:
    """Regress V(s) on ``targets`` with ``iters`` full-batch steps; returns the last MSE.

    obs ``(T, obs_dim)``, targets ``(T,)`` floats, all finite.
    """
    if targets.shape != obs.shape[:1]:
        raise ValueError(
            f"targets must have shape ({obs.shape[0]},) for obs {tuple(obs.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    check_int("iters", iters, low=1, fix="use e.g. 20 full-batch steps")
    check_float("targets", targets)
    check_finite("targets", targets)
    for _ in range(iters):
        loss = ((value_fn(obs) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()
