"""Policy gradient and REINFORCE (chapter 02, ``notebooks/02_policy_gradient.ipynb``).

The chapter derives, with the log-derivative trick,

    grad J(theta) = E_tau[ sum_t grad log pi_theta(a_t | s_t) * Psi_t ],

where the weight ``Psi_t`` may be the full return of the episode, the reward-to-go from step t, or
the reward-to-go minus a learned baseline V(s_t). All three have the same expectation; they differ
in variance, which :func:`gradient_variance` measures.

Layout of a batch: :func:`collect_episodes` runs one complete episode in each of N vectorised
environments and returns the steps *flattened env by env*, shape ``(T,)`` with ``T`` = total steps,
and ``dones[t] == 1`` at the last step of each episode (terminated or truncated by the time limit;
REINFORCE uses Monte Carlo returns, so nothing is bootstrapped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from rlcourse.device import get_device
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.progress import progress_bar

# ----------------------------------------------------------------------------- returns


def _check_rewards_dones(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> None:
    if rewards.shape != dones.shape:
        raise ValueError(
            f"rewards and dones must have the same shape, got rewards {tuple(rewards.shape)} "
            f"and dones {tuple(dones.shape)}"
        )
    if rewards.ndim not in (1, 2) or rewards.shape[0] == 0:
        raise ValueError(f"rewards must have shape (T,) or (T, N) with T >= 1, got {tuple(rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")


def reward_to_go(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted reward-to-go ``G_t = r_t + gamma r_{t+1} + ...`` up to the end of t's episode.

    Args:
        rewards: ``(T,)`` or ``(T, N)`` (N parallel streams, time along dim 0).
        dones: same shape; ``dones[t] == 1`` means the episode ended at step t, so ``G_t = r_t``
            and nothing flows back from step t+1. The last step of the batch is treated as an
            episode end (no bootstrap).
        gamma: discount in [0, 1].

    Returns:
        ``G``, same shape and dtype as ``rewards``.
    """
    _check_rewards_dones(rewards, dones, gamma)
    r = rewards.detach().cpu().double().numpy()
    notdone = 1.0 - dones.detach().cpu().double().numpy()
    out = np.zeros_like(r)
    running = np.zeros_like(r[0])
    for t in range(r.shape[0] - 1, -1, -1):
        running = r[t] + gamma * notdone[t] * running
        out[t] = running
    return torch.as_tensor(out, dtype=rewards.dtype, device=rewards.device)


def full_return(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """The discounted return of each step's *whole* episode, ``G_0 = sum_k gamma^k r_k``.

    Every step of an episode gets the same number (the "full return" weight of the original
    REINFORCE estimator). Shapes and episode boundaries as in :func:`reward_to_go`.
    """
    rtg = reward_to_go(rewards, dones, gamma)
    flat = rtg.ndim == 1
    g = rtg.unsqueeze(1) if flat else rtg
    d = (dones.unsqueeze(1) if flat else dones).bool()
    out = torch.empty_like(g)
    for n in range(g.shape[1]):
        start = 0
        for t in range(g.shape[0]):
            if d[t, n] or t == g.shape[0] - 1:
                out[start : t + 1, n] = g[start, n]
                start = t + 1
    return out.squeeze(1) if flat else out


# ----------------------------------------------------------------------------- loss


def reinforce_loss(logp: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate loss ``-mean(log pi(a_t|s_t) * Psi_t)``, a scalar.

    Its gradient is minus the policy-gradient estimate, so gradient *descent* on it is ascent on J.
    ``weights`` (``Psi_t``: returns, rewards-to-go or advantages) are treated as constants.

    Args:
        logp: ``(B,)`` log-probabilities of the actions taken, with a graph to the policy.
        weights: ``(B,)``.
    """
    if logp.ndim != 1 or logp.shape != weights.shape:
        raise ValueError(
            f"logp and weights must both have shape (B,), got logp {tuple(logp.shape)} "
            f"and weights {tuple(weights.shape)}"
        )
    if logp.shape[0] == 0:
        raise ValueError("reinforce_loss got an empty batch (B = 0)")
    return -(logp * weights.detach()).mean()


# ----------------------------------------------------------------------------- rollouts


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
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
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

    obs ``(T, obs_dim)``, targets ``(T,)``.
    """
    if targets.shape != obs.shape[:1]:
        raise ValueError(
            f"targets must have shape ({obs.shape[0]},) for obs {tuple(obs.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(iters):
        loss = ((value_fn(obs) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


# ----------------------------------------------------------------------------- trainer


@dataclass
class ReinforceConfig:
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
    """The weight Psi_t of every step ``(T,)``, as chosen by ``cfg`` (see :class:`ReinforceConfig`)."""
    ret = reward_to_go if cfg.reward_to_go else full_return
    w = ret(batch.rewards, batch.dones, cfg.gamma)
    if value_fn is not None:
        with torch.no_grad():
            w = w - value_fn(batch.obs)
    if cfg.normalize_weights:
        w = (w - w.mean()) / (w.std() + 1e-8)
    return w


def train_reinforce(cfg: ReinforceConfig, progress: bool = False) -> tuple[CategoricalPolicy, TrainHistory]:
    """Train REINFORCE as set by ``cfg``; returns the policy and a :class:`TrainHistory`."""
    device = torch.device(cfg.device) if cfg.device else get_device()
    torch.manual_seed(cfg.seed)
    envs = make_envs(cfg.env_id, cfg.episodes_per_batch)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, cfg.hidden).to(device)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    value_fn = ValueNet(obs_dim, cfg.hidden).to(device) if cfg.use_baseline else None
    vf_opt = torch.optim.Adam(value_fn.parameters(), lr=cfg.vf_lr) if value_fn is not None else None
    hist, steps, t0 = TrainHistory(), 0, time.perf_counter()
    it = progress_bar(range(cfg.iterations), progress, f"REINFORCE seed {cfg.seed}")
    for i in it:
        batch = collect_episodes(envs, policy, seed=cfg.seed if i == 0 else None)
        steps = hist.record(batch, steps)
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
    envs.close()
    hist.seconds = time.perf_counter() - t0
    return policy, hist


# ----------------------------------------------------------------------------- variance


class ScaledValue(torch.nn.Module):
    """``scale * net(obs)``: a value net trained on targets divided by ``scale`` (keeps them O(1))."""

    def __init__(self, net: ValueNet, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(obs)


def fit_baseline(
    policy: CategoricalPolicy,
    env_id: str = "CartPole-v1",
    episodes: int = 64,
    gamma: float = 1.0,
    iters: int = 300,
    lr: float = 1e-2,
    hidden: tuple[int, ...] = (64,),
    seed: int = 0,
) -> tuple[ScaledValue, float]:
    """Fit V(s) ~ E[G_t | s_t] for a *fixed* policy on ``episodes`` fresh episodes.

    Returns the value function (obs ``(T, obs_dim)`` -> ``(T,)``) and the fraction of the targets'
    variance it explains, ``1 - MSE / Var[G]``.
    """
    envs = make_envs(env_id, episodes)
    batch = collect_episodes(envs, policy, seed=seed)
    envs.close()
    targets = reward_to_go(batch.rewards, batch.dones, gamma)
    scale = float(targets.abs().mean()) + 1e-8
    net = ValueNet(batch.obs.shape[1], hidden).to(batch.obs.device)
    mse = fit_value(net, torch.optim.Adam(net.parameters(), lr=lr), batch.obs, targets / scale, iters)
    return ScaledValue(net, scale), 1.0 - mse * scale**2 / float(targets.var())


def gradient_variance(
    policy: CategoricalPolicy,
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    env_id: str = "CartPole-v1",
    n_batches: int = 100,
    episodes_per_batch: int = 4,
    gamma: float = 1.0,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Measure the spread of three policy-gradient estimators at fixed parameters.

    Collects ``n_batches * episodes_per_batch`` episodes with ``policy``, splits them into
    ``n_batches`` independent batches and, on each batch, computes the estimate
    ``g = (1/M) sum_episodes sum_t grad log pi(a_t|s_t) Psi_t`` (M = episodes_per_batch) with
    Psi = full return, reward-to-go, reward-to-go minus ``value_fn(s_t)`` (obs ``(T, obs_dim)`` ->
    ``(T,)``; see :func:`fit_baseline`). With ``gamma = 1`` all
    three estimate the same gradient, so their spreads compare directly.

    Returns ``{estimator: {"total_variance": sum_j Var[g_j], "mean_sq_norm": E||g||^2,
    "mean_norm_sq": ||E g||^2, "relative_variance": total_variance / mean_sq_norm}}``. The raw estimates are available from
    :func:`gradient_samples`.
    """
    samples = gradient_samples(policy, value_fn, env_id, n_batches, episodes_per_batch, gamma, seed)
    out = {}
    for name, g in samples.items():
        mean = g.mean(0)
        total_var = float(g.var(0, unbiased=True).sum())
        msn = float((g**2).sum(1).mean())
        out[name] = {
            "total_variance": total_var,
            "mean_sq_norm": msn,
            "mean_norm_sq": float((mean**2).sum()),
            "relative_variance": total_var / msn,
        }
    return out


def gradient_samples(
    policy: CategoricalPolicy,
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    env_id: str = "CartPole-v1",
    n_batches: int = 100,
    episodes_per_batch: int = 4,
    gamma: float = 1.0,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The raw estimates behind :func:`gradient_variance`: ``{estimator: (n_batches, P)}``.

    P is the number of policy parameters; estimators are ``"full return"``, ``"reward-to-go"``
    and ``"reward-to-go - V(s)"``.
    """
    if n_batches < 2 or episodes_per_batch < 1:
        raise ValueError(
            f"need n_batches >= 2 and episodes_per_batch >= 1, got {n_batches}, {episodes_per_batch}"
        )
    envs = make_envs(env_id, n_batches * episodes_per_batch)
    batch = collect_episodes(envs, policy, seed=seed)
    envs.close()
    slices = batch.episode_slices()
    params = [p for p in policy.parameters() if p.requires_grad]
    names = ("full return", "reward-to-go", "reward-to-go - V(s)")
    out: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    for b in range(n_batches):
        sl = slice(slices[b * episodes_per_batch].start, slices[(b + 1) * episodes_per_batch - 1].stop)
        obs, act, rew, done = batch.obs[sl], batch.actions[sl], batch.rewards[sl], batch.dones[sl]
        rtg = reward_to_go(rew, done, gamma)
        with torch.no_grad():
            base = value_fn(obs)
        weights = {names[0]: full_return(rew, done, gamma), names[1]: rtg, names[2]: rtg - base}
        logp = policy.log_prob(obs, act)
        for k, w in weights.items():
            total = (logp * w).sum() / episodes_per_batch
            grads = torch.autograd.grad(total, params, retain_graph=True)
            out[k].append(torch.cat([g.reshape(-1) for g in grads]))
    return {k: torch.stack(v) for k, v in out.items()}
