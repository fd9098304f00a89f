"""Measuring the variance of policy-gradient estimators at fixed parameters (chapter 02, section 5)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.checks import check_int, check_number
from rlcourse.pg.returns import full_return, reward_to_go
from rlcourse.pg.rollouts import collect_episodes, fit_value, make_envs
from rlcourse.policies import CategoricalPolicy, ValueNet


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
    check_int("episodes", episodes, low=2, fix="use e.g. 64 episodes")
    check_int("iters", iters, low=1, fix="use e.g. 300")
    check_number("lr", lr, low=0.0, low_open=True, fix="use e.g. 1e-2")
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
    check_int("n_batches", n_batches, low=2, fix="a variance needs at least two independent estimates")
    check_int("episodes_per_batch", episodes_per_batch, low=1, fix="use e.g. 4")
    check_number("gamma", gamma, low=0.0, high=1.0, fix="use 1.0: then all three estimators share one mean")
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
