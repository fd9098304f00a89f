"""Proximal Policy Optimization, PPO -- derived in chapter 04 (04_ppo_gae).

The losses (used on CartPole here and on a language model's tokens in ``rlcourse.rlhf``):

- :func:`clipped_surrogate_loss` -- PPO-clip (裁剪): ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))``
  with the probability ratio ``r = pi_new(a|s) / pi_old(a|s)``.
- :func:`kl_penalty_loss` and :func:`adaptive_kl_beta` -- PPO-penalty: ``-mean(r A) + beta KL``,
  with beta halved or doubled after each update to keep the KL near a target.
- :func:`clipped_value_loss` -- the value function's (价值函数) squared error, with its change
  clipped like the ratio (CleanRL's and TRL's form, with the 1/2).
- :func:`approx_kl` -- ``mean((r - 1) - log r)``, an estimate of KL(pi_old || pi_new) that is never
  negative (the "k3" estimator CleanRL logs).

Every loss takes an optional ``mask`` (same shape, 1 = count this element): the mean is then over
the masked elements only, as the LM track needs for padded completions.

The trainer, :func:`train_ppo` with :class:`PPOConfig`, is CleanRL's single-file PPO for discrete
gymnasium environments, with Stable-Baselines3's choices where they differ (see ``PPOConfig``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from rlcourse.device import get_device
from rlcourse.flat import FlatAdam, flat_parameters, own_storage
from rlcourse.gae import compute_gae
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.progress import progress_bar

__all__ = [
    "PPOConfig",
    "PPOResult",
    "adaptive_kl_beta",
    "approx_kl",
    "clipped_surrogate_loss",
    "clipped_value_loss",
    "kl_penalty_loss",
    "make_vector_env",
    "train_ppo",
]


# ----- losses ---------------------------------------------------------------------------------------
def _same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"inputs must have the same shape, got {shapes}; nothing is broadcast")
    if any(t is not None and t.numel() == 0 for t in tensors.values()):
        raise ValueError(f"inputs are empty (shapes {shapes}); a loss needs at least one element")


def _mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x``, or over the elements where ``mask == 1`` (mask has x's shape)."""
    if mask is None:
        return x.mean()
    mask = mask.to(x.dtype)
    count = mask.sum()
    if count.item() == 0:
        raise ValueError("mask selects no element (all zeros); there is nothing to average")
    return (x * mask).sum() / count


def _ratio(logp_new: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
    return torch.exp(logp_new - logp_old)


def clipped_surrogate_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO-clip policy loss ``mean(-min(r A, clip(r, 1 - eps, 1 + eps) A))``, a scalar.

    Args:
        logp_new: log pi_theta(a|s) with gradient, any shape (B,), (B, T), ...
        logp_old: log pi_old(a|s) from the rollout, same shape (treated as a constant).
        advantages: A, same shape (treated as a constant).
        clip_eps: eps > 0.
        mask: optional, same shape; average over ``mask == 1`` only.
    """
    _same_shape(logp_new=logp_new, logp_old=logp_old, advantages=advantages, mask=mask)
    if clip_eps < 0:
        raise ValueError(f"clip_eps must be >= 0, got {clip_eps}")
    ratio = _ratio(logp_new, logp_old.detach())
    adv = advantages.detach()
    loss = -torch.min(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    return _mean(loss, mask)


def clipped_value_loss(
    values_new: torch.Tensor,
    values_old: torch.Tensor,
    returns: torch.Tensor,
    clip_eps: float,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))``, a scalar.

    The clipped prediction may move at most ``eps`` from the value at collection time; taking the
    max makes the loss pessimistic, so moving V far from V_old gains nothing. Shapes: all equal.
    """
    _same_shape(values_new=values_new, values_old=values_old, returns=returns, mask=mask)
    if clip_eps < 0:
        raise ValueError(f"clip_eps must be >= 0, got {clip_eps}")
    v_old, ret = values_old.detach(), returns.detach()
    v_clipped = v_old + (values_new - v_old).clamp(-clip_eps, clip_eps)
    loss = torch.max((values_new - ret) ** 2, (v_clipped - ret) ** 2)
    return 0.5 * _mean(loss, mask)


def approx_kl(
    logp_new: torch.Tensor, logp_old: torch.Tensor, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``mean((r - 1) - log r)`` with ``r = exp(logp_new - logp_old)``: KL(pi_old || pi_new) >= 0.

    Unbiased when the actions were sampled from pi_old, and never negative per sample. Scalar.
    """
    _same_shape(logp_new=logp_new, logp_old=logp_old, mask=mask)
    log_r = logp_new - logp_old.detach()
    return _mean(torch.expm1(log_r) - log_r, mask)


def kl_penalty_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    beta: float,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO-penalty policy loss ``-mean(r A) + beta * KL(pi_old || pi_new)`` (KL as in :func:`approx_kl`).

    Shapes: all equal; returns a scalar. Pair it with :func:`adaptive_kl_beta` after each update.
    """
    _same_shape(logp_new=logp_new, logp_old=logp_old, advantages=advantages, mask=mask)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    ratio = _ratio(logp_new, logp_old.detach())
    surrogate = _mean(ratio * advantages.detach(), mask)
    return -surrogate + beta * approx_kl(logp_new, logp_old, mask=mask)


def adaptive_kl_beta(beta: float, kl: float, kl_target: float) -> float:
    """The PPO paper's rule (section 4): halve beta if kl < target / 1.5, double it if kl > 1.5 target."""
    if beta <= 0 or kl_target <= 0:
        raise ValueError(f"beta and kl_target must be > 0, got beta={beta}, kl_target={kl_target}")
    kl = float(kl)
    if not np.isfinite(kl):
        raise ValueError(f"kl must be a finite number, got {kl}")
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > kl_target * 1.5:
        return beta * 2.0
    return float(beta)


# ----- the trainer -----------------------------------------------------------------------------------
@dataclass
class PPOConfig:
    """Hyperparameters of :func:`train_ppo`. Defaults: rl-zoo's tuned CartPole-v1 settings for SB3."""

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
    """clipping range of the ratio (and of the value change when clip_value is on)"""
    anneal_clip: bool = True
    """decay clip_eps linearly to 0 like the learning rate (rl-zoo's lin_0.2)"""
    kl_target: float = 0.01
    """PPO-penalty: the KL per update that the adaptive beta aims at"""
    beta_init: float = 1.0
    """PPO-penalty: the starting KL coefficient"""
    clip_value: bool = False
    """clip the value function's change to +-clip_eps (the annealed one) per update (CleanRL: on; SB3: off)"""
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
        if self.objective not in ("clip", "kl_penalty"):
            raise ValueError(f"objective must be 'clip' or 'kl_penalty', got {self.objective!r}")
        if self.truncation not in ("bootstrap", "cleanrl"):
            raise ValueError(f"truncation must be 'bootstrap' or 'cleanrl', got {self.truncation!r}")
        if min(self.num_envs, self.num_steps, self.minibatch_size, self.update_epochs, self.window) < 1:
            raise ValueError("num_envs, num_steps, minibatch_size, update_epochs and window must be >= 1")
        if self.minibatch_size > self.num_envs * self.num_steps:
            raise ValueError(
                f"minibatch_size {self.minibatch_size} is larger than a rollout "
                f"(num_envs * num_steps = {self.num_envs * self.num_steps})"
            )


@dataclass
class PPOResult:
    """What :func:`train_ppo` measured. Per-episode lists are in the order episodes ended."""

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


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of ``env_id`` stepped in one process. When an episode ends, the env resets
    in the same step and ``info["final_obs"]`` holds the last observation (needed to bootstrap)."""
    try:
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    except gym.error.Error as err:
        raise ValueError(f"gymnasium cannot make {env_id!r}: {err}") from None
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        raise ValueError(f"train_ppo needs a discrete action space; {env_id} has {envs.single_action_space}")
    if len(envs.single_observation_space.shape or ()) != 1:
        raise ValueError(
            f"train_ppo needs flat (1-D) observations; {env_id} has {envs.single_observation_space}"
        )
    return envs


def train_ppo(cfg: PPOConfig, device: torch.device | str | None = None, progress: bool = False) -> PPOResult:
    """Train a policy and a value function with PPO on ``cfg.env_id``; see :class:`PPOConfig`.

    ``device`` holds the networks and the rollout tensors (default: ``rlcourse.device.get_device()``);
    the environments always step in NumPy. ``progress`` shows a tqdm bar over the updates.
    """
    device = torch.device(device) if device is not None else get_device(set_threads=False)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    envs = make_vector_env(cfg.env_id, cfg.num_envs)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, cfg.hidden).to(device)
    value_fn = ValueNet(obs_dim, cfg.hidden).to(device)
    # both networks' weights as views into one flat tensor: zeroing, clipping and Adam then each make one call on
    # one tensor (on networks this small, looping over a dozen tensors costs more than the arithmetic)
    params = flat_parameters(policy, value_fn)
    optimizer = FlatAdam(params, lr=cfg.learning_rate, eps=1e-5)  # torch.optim.Adam's arithmetic, written out
    res = PPOResult(policy, value_fn)

    T, N, batch = cfg.num_steps, cfg.num_envs, cfg.num_envs * cfg.num_steps
    # the rollout is stored in NumPy, the environments' language, and moved to `device` once per rollout
    obs_buf = np.zeros((T, N, obs_dim), dtype=np.float32)
    act_buf = np.zeros((T, N), dtype=np.int64)
    rew_buf = np.zeros((T, N), dtype=np.float32)
    done_buf = np.zeros((T, N), dtype=np.float32)
    ep_return = np.zeros(N)
    beta = cfg.beta_init
    next_obs, _ = envs.reset(seed=cfg.seed)
    n_updates = max(1, cfg.total_timesteps // batch)
    bar = progress_bar(range(n_updates), progress, "PPO updates")
    for _update in bar:
        # 1. Rollout: T steps of N environments with the current policy (no gradients needed).
        truncated_at = []  # (t, env index, final observation) of time-limit truncations
        for t in range(T):
            obs_buf[t] = next_obs
            action = policy.act(torch.as_tensor(next_obs, dtype=torch.float32, device=device)).cpu().numpy()
            next_obs, reward, terminated, truncated, info = envs.step(action)
            act_buf[t], rew_buf[t], done_buf[t] = action, reward, terminated | truncated
            res.env_steps += N
            ep_return += reward
            for i in np.flatnonzero(terminated | truncated):
                res.episode_returns.append(float(ep_return[i]))
                res.episode_steps.append(res.env_steps)
                ep_return[i] = 0.0
                if truncated[i] and not terminated[i]:
                    truncated_at.append((t, i, info["final_obs"][i]))
                if _reached_target(res, cfg):
                    res.solved_step, res.solved_time = res.env_steps, time.perf_counter() - start
                    break
            if res.solved_step is not None:
                break
        if res.solved_step is not None:
            break

        # 2. Evaluate the whole rollout at once (the policy did not change while collecting it).
        flat_obs = torch.tensor(obs_buf, device=device).reshape(batch, obs_dim)
        flat_act = torch.tensor(act_buf, device=device).reshape(batch)
        rewards, dones = torch.tensor(rew_buf, device=device), torch.tensor(done_buf, device=device)
        with torch.no_grad():
            logp_old = policy.log_prob(flat_obs, flat_act)
            values = value_fn(flat_obs).reshape(T, N)
            last_value = value_fn(torch.as_tensor(next_obs, dtype=torch.float32, device=device))
            if cfg.truncation == "bootstrap" and truncated_at:
                # the episode did not end, the clock did: add what the final state was still worth
                ts, idx, final_obs = zip(*truncated_at, strict=True)
                final_obs = torch.as_tensor(np.stack(final_obs), dtype=torch.float32, device=device)
                rewards[list(ts), list(idx)] += cfg.gamma * value_fn(final_obs)
            advantages, returns = compute_gae(rewards, values, dones, last_value, cfg.gamma, cfg.gae_lambda)
            advantages, returns, values = advantages.flatten(), returns.flatten(), values.flatten()
            res.explained_variance.append((1 - (returns - values).var() / returns.var()).item())

        # 3. Learn: several epochs of minibatch gradient steps on the same rollout.
        frac = 1.0 - res.env_steps / cfg.total_timesteps  # linear schedules, as SB3's lin_<x>
        optimizer.lr = cfg.learning_rate * (frac if cfg.anneal_lr else 1.0)
        clip_eps = cfg.clip_eps * (frac if cfg.anneal_clip else 1.0)
        whole = cfg.minibatch_size == batch  # one minibatch = the whole rollout: nothing to shuffle or copy
        if cfg.norm_adv and whole:
            advantages = _normalise(advantages)  # per minibatch, as below; here that is once per rollout
        for _epoch in range(cfg.update_epochs):
            if whole:
                minibatches = [slice(None)]
            else:  # shuffled minibatches
                minibatches = torch.randperm(batch, device=device).split(cfg.minibatch_size)
            for mb in minibatches:
                logp = policy.log_prob(flat_obs[mb], flat_act[mb])
                adv = advantages[mb]
                if cfg.norm_adv and not whole:
                    adv = _normalise(adv)
                if cfg.objective == "clip":
                    pg_loss = clipped_surrogate_loss(logp, logp_old[mb], adv, clip_eps)
                else:
                    pg_loss = kl_penalty_loss(logp, logp_old[mb], adv, beta)
                v = value_fn(flat_obs[mb])
                if cfg.clip_value:
                    v_loss = clipped_value_loss(v, values[mb], returns[mb], clip_eps)
                else:
                    v_loss = 0.5 * F.mse_loss(v, returns[mb])
                loss = pg_loss + cfg.vf_coef * v_loss
                if cfg.ent_coef:
                    logits = policy(flat_obs[mb])
                    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()
                    loss = loss - cfg.ent_coef * entropy
                params.grad.zero_()  # in place: the networks' .grad are views into params.grad
                loss.backward()
                # clip the gradient's global norm to max_grad_norm (what nn.utils.clip_grad_norm_ does)
                grad_norm = params.grad.norm()
                params.grad.mul_((cfg.max_grad_norm / (grad_norm + 1e-6)).clamp(max=1.0))
                optimizer.step()

        # 4. Diagnostics over the whole rollout, and PPO-penalty's beta for the next update.
        with torch.no_grad():
            logp = policy.log_prob(flat_obs, flat_act)
            kl = approx_kl(logp, logp_old).item()
            res.kl.append(kl)
            res.clip_fraction.append(((logp - logp_old).exp().sub(1).abs() > clip_eps).float().mean().item())
            res.value_loss.append(0.5 * ((value_fn(flat_obs) - returns) ** 2).mean().item())
            res.beta.append(beta if cfg.objective == "kl_penalty" else 0.0)
            if cfg.objective == "kl_penalty":
                beta = adaptive_kl_beta(beta, kl, cfg.kl_target)
        if progress:
            bar.set_postfix(ret=f"{res.last_mean(cfg.window):.0f}", kl=f"{kl:.4f}")
    envs.close()
    own_storage(policy, value_fn)
    res.wall_time = time.perf_counter() - start
    return res


def _normalise(adv: torch.Tensor) -> torch.Tensor:
    """Advantages shifted and scaled to mean 0, std 1 (SB3's and CleanRL's minibatch normalisation)."""
    return (adv - adv.mean()) / (adv.std() + 1e-8)


def _reached_target(res: PPOResult, cfg: PPOConfig) -> bool:
    return (
        cfg.target_return is not None
        and res.solved_step is None
        and len(res.episode_returns) >= cfg.window
        and res.last_mean(cfg.window) >= cfg.target_return
    )
