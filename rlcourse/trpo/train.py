"""One TRPO update and the TRPO trainer (chapter 03)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rlcourse.checks import (
    TrainingError,
    call_user,
    check_choice,
    check_finite,
    check_float,
    check_int,
    check_number,
    interrupted,
)
from rlcourse.device import get_device
from rlcourse.pg import (
    TrainHistory,
    check_common_fields,
    collect_episodes,
    fit_value,
    make_envs,
    reward_to_go,
)
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.progress import progress_bar
from rlcourse.trpo.core import (
    backtracking_line_search,
    categorical_kl,
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)


@dataclass
class TRPOConfig:
    """Settings of :func:`train_trpo` and :func:`trpo_step`; every field is checked when built."""

    env_id: str = "CartPole-v1"
    """a gymnasium environment with a discrete action space"""
    seed: int = 0
    """seeds torch (network init, action sampling) and the environments"""
    iterations: int = 40
    """number of policy updates"""
    episodes_per_batch: int = 16
    """episodes collected per update (one per vectorised environment)"""
    gamma: float = 0.99
    """discount factor for the rewards-to-go"""
    update: str = "trpo"
    """"trpo" (natural gradient + line search) or "vanilla" (plain gradient ascent, for comparison)"""
    delta: float = 0.01
    """trust-region radius: the largest mean KL(pi_old || pi_new) over the batch an update may make"""
    damping: float = 0.1
    """added to the Fisher matrix, F + damping I, to keep CG well conditioned"""
    cg_iters: int = 10
    """conjugate-gradient iterations"""
    backtrack_iters: int = 10
    """line-search tries before giving up on an update"""
    backtrack_coef: float = 0.8
    """each line-search try shrinks the step by this factor"""
    vanilla_lr: float = 0.05
    """step size of the "vanilla" update: theta += vanilla_lr * g (plain SGD, no Adam)"""
    hidden: tuple[int, ...] = (32,)
    """hidden layer sizes of the policy and value MLPs"""
    vf_lr: float = 1e-2
    """Adam learning rate of the value baseline"""
    vf_iters: int = 20
    """full-batch value-regression steps per update"""
    device: str | None = None
    """torch device; None = follow rlcourse.device.get_device()"""

    def __post_init__(self) -> None:
        owner = "TRPOConfig"
        check_common_fields(self, owner)
        check_choice("update", self.update, ("trpo", "vanilla"), owner=owner)
        check_number("delta", self.delta, low=0.0, low_open=True, owner=owner, fix="use e.g. 0.01")
        check_number("damping", self.damping, low=0.0, owner=owner, fix="use e.g. 0.1, or 0 for none")
        check_int("cg_iters", self.cg_iters, low=1, owner=owner, fix="use e.g. 10")
        check_int("backtrack_iters", self.backtrack_iters, low=1, owner=owner, fix="use e.g. 10")
        check_number(
            "backtrack_coef", self.backtrack_coef, low=0.0, high=1.0, low_open=True, high_open=True,
            owner=owner, fix="use e.g. 0.8",
        )  # fmt: skip
        check_number("vanilla_lr", self.vanilla_lr, low=0.0, low_open=True, owner=owner, fix="use e.g. 0.05")


@dataclass
class PolicyBatch:
    """What one policy update needs: obs ``(T, obs_dim)``, actions ``(T,)`` int, advantages ``(T,)``."""

    obs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor

    def __post_init__(self) -> None:
        t = self.obs.shape[0]
        if t == 0:
            raise ValueError("PolicyBatch is empty (0 steps); collect at least one step")
        if self.actions.shape != (t,) or self.advantages.shape != (t,):
            raise ValueError(
                f"obs {tuple(self.obs.shape)}, actions {tuple(self.actions.shape)} and advantages "
                f"{tuple(self.advantages.shape)} must agree: expected actions and advantages of shape ({t},)"
            )
        if self.actions.is_floating_point() or self.actions.is_complex():
            raise TypeError(
                f"actions must be an integer tensor, got dtype {self.actions.dtype}; use actions.long()"
            )
        check_float("advantages", self.advantages)
        check_finite("advantages", self.advantages)
        check_finite("obs", self.obs)


def surrogate_and_kl(
    policy: CategoricalPolicy, batch: PolicyBatch, logits_old: torch.Tensor, logp_old: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Surrogate ``mean(pi/pi_old * A)`` and ``mean KL(pi_old || pi)``, both scalars with graphs."""
    logits = policy(batch.obs)
    logp = torch.log_softmax(logits, -1).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
    surrogate = (torch.exp(logp - logp_old) * batch.advantages).mean()
    kl = categorical_kl(logits_old, logits).mean()
    return surrogate, kl


def trpo_step(policy: CategoricalPolicy, batch: PolicyBatch, cfg: TRPOConfig) -> dict[str, float]:
    """One TRPO (or, with ``cfg.update == "vanilla"``, one plain gradient) update of ``policy``.

    Returns statistics: the batch's mean KL(pi_old || pi_new) of the update, the surrogate
    improvement, whether the line search accepted a step, the number of tries, and ``cos_grad``,
    the cosine between the step direction x ~ (F + damping I)^-1 g and the plain gradient g (1 for
    "vanilla"): how far the natural gradient turns away from the plain one.
    """
    if not isinstance(cfg, TRPOConfig):
        raise TypeError(f"cfg must be a TRPOConfig, got {type(cfg).__name__}")
    if not isinstance(batch, PolicyBatch):
        raise TypeError(f"batch must be a PolicyBatch(obs, actions, advantages), got {type(batch).__name__}")
    params = [p for p in policy.parameters() if p.requires_grad]
    with torch.no_grad():
        logits_old = policy(batch.obs)
        logp_old = torch.log_softmax(logits_old, -1).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
    surr, _ = surrogate_and_kl(policy, batch, logits_old, logp_old)
    g = flat_grad(surr, params)  # policy gradient at theta_old

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            s, k = surrogate_and_kl(policy, batch, logits_old, logp_old)
        return s.item(), k.item()

    if cfg.update == "vanilla":
        set_flat_params(params, flat_params(params) + cfg.vanilla_lr * g)
        s_new, kl = evaluate()
        return {"kl": kl, "improvement": s_new - surr.item(), "accepted": 1.0, "tries": 1.0, "cos_grad": 1.0}
    fvp = fisher_vector_product(
        lambda: categorical_kl(logits_old, policy(batch.obs)).mean(), params, cfg.damping
    )
    x = conjugate_gradient(fvp, g, cfg.cg_iters)  # x ~ F^{-1} g, the natural gradient
    alpha = torch.sqrt(2 * cfg.delta / (x @ fvp(x) + 1e-8))
    cos = float(torch.nn.functional.cosine_similarity(x, g, dim=0))
    res = backtracking_line_search(
        params, alpha * x, evaluate, surr.item(), cfg.delta, cfg.backtrack_iters, cfg.backtrack_coef
    )
    return {
        "kl": res.kl,
        "improvement": res.improvement,
        "accepted": float(res.accepted),
        "tries": float(res.tries),
        "cos_grad": cos,
    }


@dataclass
class TRPOHistory(TrainHistory):
    """REINFORCE's :class:`~rlcourse.pg.TrainHistory`, plus per update: KL, acceptance, tries, seconds,
    and the cosine between the natural-gradient direction and the plain gradient."""

    update_kl: list[float] = field(default_factory=list)
    update_accepted: list[float] = field(default_factory=list)
    update_tries: list[float] = field(default_factory=list)
    update_seconds: list[float] = field(default_factory=list)
    update_cos_grad: list[float] = field(default_factory=list)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / (std + 1e-8)`` over the batch, shape ``(T,) -> (T,)``."""
    return (x - x.mean()) / (x.std() + 1e-8)


def train_trpo(
    cfg: TRPOConfig,
    progress: bool = False,
    *,
    callback: Callable[[int, TRPOHistory], Any] | None = None,
) -> tuple[CategoricalPolicy, TRPOHistory]:
    """Train with TRPO (or vanilla PG, ``cfg.update``); returns the policy and a :class:`TRPOHistory`.

    ``callback(step, history)``, if given, is called after every update (``step`` = number of
    completed updates, from 1). If anything raises mid-run (the callback included), a
    :class:`rlcourse.checks.TrainingError` carries the completed steps' history (``err.history``);
    Ctrl-C (KeyboardInterrupt) stops the run and returns the policy and history so far.
    """
    if not isinstance(cfg, TRPOConfig):
        raise TypeError(f"cfg must be a TRPOConfig, got {type(cfg).__name__}")
    device = torch.device(cfg.device) if cfg.device else get_device()
    torch.manual_seed(cfg.seed)
    envs = make_envs(cfg.env_id, cfg.episodes_per_batch)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, cfg.hidden).to(device)
    value_fn: nn.Module = ValueNet(obs_dim, cfg.hidden).to(device)
    vf_opt = torch.optim.Adam(value_fn.parameters(), lr=cfg.vf_lr)
    hist, steps, done, t0 = TRPOHistory(), 0, 0, time.perf_counter()
    try:
        for i in progress_bar(range(cfg.iterations), progress, f"{cfg.update} seed {cfg.seed}"):
            ep = collect_episodes(envs, policy, seed=cfg.seed if i == 0 else None)
            rtg = reward_to_go(ep.rewards, ep.dones, cfg.gamma)
            with torch.no_grad():
                adv = normalize(rtg - value_fn(ep.obs))
            t1 = time.perf_counter()
            stats = trpo_step(policy, PolicyBatch(ep.obs, ep.actions, adv), cfg)
            seconds = time.perf_counter() - t1
            fit_value(value_fn, vf_opt, ep.obs, rtg, cfg.vf_iters)
            # logged once the update is complete, so a failure never leaves a half-logged step
            steps = hist.record(ep, steps)
            hist.update_seconds.append(seconds)
            hist.update_kl.append(stats["kl"])
            hist.update_accepted.append(stats["accepted"])
            hist.update_tries.append(stats["tries"])
            hist.update_cos_grad.append(stats["cos_grad"])
            done = i + 1
            if callback is not None:
                call_user(callback, "callback", done, hist)
    except KeyboardInterrupt:
        interrupted("train_trpo", done)
    except Exception as e:
        raise TrainingError("train_trpo", done, hist, e) from e
    finally:
        envs.close()
        hist.seconds = time.perf_counter() - t0
    return policy, hist
