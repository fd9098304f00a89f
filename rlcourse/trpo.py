"""Trust Region Policy Optimization (chapter 03, ``notebooks/03_trpo.ipynb``).

TRPO maximises the surrogate objective ``L(theta) = E[pi_theta(a|s) / pi_old(a|s) * A]`` subject to
a trust region (信任域) ``mean KL(pi_old || pi_theta) <= delta``. Linearising L and taking the KL to
second order gives the natural-gradient (自然梯度) step ``x = F^{-1} g`` with F the Fisher matrix
(the Hessian of the mean KL at theta_old). TRPO never builds F: it solves ``F x = g`` by conjugate
gradient (共轭梯度), which only needs Fisher-vector products ``F v``, each one double backprop of the
mean KL. The step is scaled to hit the KL bound, ``alpha = sqrt(2 delta / (x^T F x))``, and a
backtracking line search (线搜索) shrinks it until the *exact* KL is <= delta and the surrogate
improved. Defaults follow Spinning Up: delta 0.01, damping 0.1, 10 CG iterations, 10 backtracks of
0.8.

Advantages here are rewards-to-go minus a learned value baseline (chapter 02), normalised per batch;
chapter 04 replaces them with GAE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from rlcourse.device import get_device
from rlcourse.pg import TrainHistory, collect_episodes, fit_value, make_envs, reward_to_go
from rlcourse.policies import CategoricalPolicy, ValueNet
from rlcourse.progress import progress_bar

# ----------------------------------------------------------------------------- flat parameters


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate parameters into one detached vector ``(P,)``."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy a vector ``(P,)`` back into ``params`` (in place)."""
    n = sum(p.numel() for p in params)
    if flat.shape != (n,):
        raise ValueError(f"flat parameter vector must have shape ({n},), got {tuple(flat.shape)}")
    i = 0
    with torch.no_grad():
        for p in params:
            p.copy_(flat[i : i + p.numel()].view_as(p))
            i += p.numel()


def flat_grad(y: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = False) -> torch.Tensor:
    """Gradient of the scalar ``y`` w.r.t. ``params``, flattened to ``(P,)``."""
    grads = torch.autograd.grad(y, list(params), create_graph=create_graph, retain_graph=True)
    return torch.cat([g.reshape(-1) for g in grads])


# ----------------------------------------------------------------------------- KL and Fisher


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_a p(a) (log p(a) - log q(a)) per row: ``(B, A), (B, A) -> (B,)``."""
    if logits_p.shape != logits_q.shape or logits_p.ndim != 2:
        raise ValueError(
            f"logits must both have shape (B, A), got {tuple(logits_p.shape)} and {tuple(logits_q.shape)}"
        )
    logp, logq = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def fisher_vector_product(
    kl_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], damping: float = 0.1
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``v -> (H + damping I) v`` with H the Hessian of ``kl_fn()`` at the current params.

    ``kl_fn`` returns the scalar mean KL(pi_old || pi_theta) with pi_old held fixed (detached);
    at theta = theta_old its Hessian is the Fisher information matrix F. Computed by double
    backprop: g = grad KL (kept with a graph, built once), then F v = grad (g . v). Never forms
    the P x P matrix. v and the result have shape ``(P,)``.
    """
    params = list(params)
    n = sum(p.numel() for p in params)
    grad_kl = flat_grad(kl_fn(), params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        if v.shape != (n,):
            raise ValueError(
                f"the vector must have shape ({n},) (one entry per parameter), got {tuple(v.shape)}"
            )
        return flat_grad(grad_kl @ v.detach(), params) + damping * v

    return fvp


def explicit_fisher(policy: CategoricalPolicy, obs: torch.Tensor) -> torch.Tensor:
    """The Fisher matrix ``mean_s sum_a pi(a|s) grad log pi(a|s) grad log pi(a|s)^T``, shape ``(P, P)``.

    Built from one backward pass per (state, action) pair, so only for tiny policies (checks and
    teaching). ``obs`` has shape ``(B, obs_dim)``.
    """
    params = [p for p in policy.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    logp = torch.log_softmax(policy(obs), -1)  # (B, A)
    fisher = torch.zeros(n, n, dtype=logp.dtype, device=logp.device)
    for i in range(logp.shape[0]):
        for a in range(logp.shape[1]):
            g = flat_grad(logp[i, a], params)
            fisher += logp[i, a].exp().detach() * torch.outer(g, g)
    return fisher / logp.shape[0]


def conjugate_gradient(
    Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10, tol: float = 1e-10
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite A, given only ``v -> A v``.

    Starts from x = 0 and runs at most ``iters`` iterations (exact after n for an n x n A, in exact
    arithmetic); stops early when the squared residual ``r . r`` drops below ``tol``.
    b and x have shape ``(n,)``.
    """
    if b.ndim != 1 or b.shape[0] == 0:
        raise ValueError(f"b must be a non-empty vector of shape (n,), got {tuple(b.shape)}")
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x
    p = b.clone()  # search direction
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        Ap = Avp(p)
        if Ap.shape != b.shape:
            raise ValueError(f"Avp returned shape {tuple(Ap.shape)}, expected {tuple(b.shape)} like b")
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


# ----------------------------------------------------------------------------- line search


@dataclass
class LineSearchResult:
    """What the backtracking line search did."""

    accepted: bool  # False: no step passed, parameters were restored
    step_frac: float  # 0.8**j of the accepted step (0.0 when rejected)
    tries: int  # number of candidate steps evaluated
    kl: float  # mean KL of the final parameters (0.0 when rejected)
    improvement: float  # surrogate(new) - surrogate(old) (0.0 when rejected)
    trace: list[tuple[float, float, float]] = field(default_factory=list)  # (frac, surrogate, kl) per try


def backtracking_line_search(
    params: Sequence[torch.Tensor],
    full_step: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    surrogate_old: float,
    max_kl: float,
    backtrack_iters: int = 10,
    backtrack_coef: float = 0.8,
) -> LineSearchResult:
    """Try ``theta_old + coef^j * full_step`` for j = 0, 1, ...; keep the first acceptable one.

    A candidate is acceptable when ``evaluate()`` -- which returns ``(surrogate, mean KL)`` at the
    current parameters -- gives ``kl <= max_kl`` and ``surrogate >= surrogate_old``. If no
    candidate passes, the old parameters are put back. ``full_step`` has shape ``(P,)``.
    """
    params = list(params)
    old = flat_params(params)
    if full_step.shape != old.shape:
        raise ValueError(
            f"full_step must have shape {tuple(old.shape)} like the parameters, got {tuple(full_step.shape)}"
        )
    if backtrack_iters < 1 or not 0.0 < backtrack_coef < 1.0:
        raise ValueError(
            f"need backtrack_iters >= 1 and 0 < backtrack_coef < 1, got {backtrack_iters}, {backtrack_coef}"
        )
    trace = []
    for j in range(backtrack_iters):
        frac = backtrack_coef**j
        set_flat_params(params, old + frac * full_step)
        surr, kl = evaluate()
        trace.append((frac, surr, kl))
        if kl <= max_kl and surr >= surrogate_old:
            return LineSearchResult(True, frac, j + 1, kl, surr - surrogate_old, trace)
    set_flat_params(params, old)
    return LineSearchResult(False, 0.0, backtrack_iters, 0.0, 0.0, trace)


# ----------------------------------------------------------------------------- one update


@dataclass
class TRPOConfig:
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
    """trust-region radius: the largest mean KL(pi_old || pi_new) an update may make"""
    damping: float = 0.1
    """added to the Fisher matrix, F + damping I, to keep CG well conditioned"""
    cg_iters: int = 10
    """conjugate-gradient iterations"""
    backtrack_iters: int = 10
    """line-search tries before giving up on an update"""
    backtrack_coef: float = 0.8
    """each line-search try shrinks the step by this factor"""
    vanilla_lr: float = 0.05
    """step size of the "vanilla" update: theta += vanilla_lr * g"""
    hidden: tuple[int, ...] = (32,)
    """hidden layer sizes of the policy and value MLPs"""
    vf_lr: float = 1e-2
    """Adam learning rate of the value baseline"""
    vf_iters: int = 20
    """full-batch value-regression steps per update"""
    device: str | None = None
    """torch device; None = follow rlcourse.device.get_device()"""


@dataclass
class PolicyBatch:
    """What one policy update needs: obs ``(T, obs_dim)``, actions ``(T,)``, advantages ``(T,)``."""

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


def surrogate_and_kl(
    policy: CategoricalPolicy, batch: PolicyBatch, logits_old: torch.Tensor, logp_old: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Surrogate ``mean(pi/pi_old * A)`` and ``mean KL(pi_old || pi)``, both scalars with graphs."""
    logits = policy(batch.obs)
    logp = torch.log_softmax(logits, -1).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    surrogate = (torch.exp(logp - logp_old) * batch.advantages).mean()
    kl = categorical_kl(logits_old, logits).mean()
    return surrogate, kl


def trpo_step(policy: CategoricalPolicy, batch: PolicyBatch, cfg: TRPOConfig) -> dict[str, float]:
    """One TRPO (or, with ``cfg.update == "vanilla"``, one plain gradient) update of ``policy``.

    Returns statistics: the mean KL(pi_old || pi_new) of the update, the surrogate improvement,
    whether the line search accepted a step, and the number of tries.
    """
    params = [p for p in policy.parameters() if p.requires_grad]
    with torch.no_grad():
        logits_old = policy(batch.obs)
        logp_old = torch.log_softmax(logits_old, -1).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    surr, _ = surrogate_and_kl(policy, batch, logits_old, logp_old)
    g = flat_grad(surr, params)  # policy gradient at theta_old

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            s, k = surrogate_and_kl(policy, batch, logits_old, logp_old)
        return s.item(), k.item()

    if cfg.update == "vanilla":
        set_flat_params(params, flat_params(params) + cfg.vanilla_lr * g)
        s_new, kl = evaluate()
        return {"kl": kl, "improvement": s_new - surr.item(), "accepted": 1.0, "tries": 1.0}
    if cfg.update != "trpo":
        raise ValueError(f"cfg.update must be 'trpo' or 'vanilla', got {cfg.update!r}")
    fvp = fisher_vector_product(
        lambda: categorical_kl(logits_old, policy(batch.obs)).mean(), params, cfg.damping
    )
    x = conjugate_gradient(fvp, g, cfg.cg_iters)  # x ~ F^{-1} g, the natural gradient
    alpha = torch.sqrt(2 * cfg.delta / (x @ fvp(x) + 1e-8))
    res = backtracking_line_search(
        params, alpha * x, evaluate, surr.item(), cfg.delta, cfg.backtrack_iters, cfg.backtrack_coef
    )
    return {
        "kl": res.kl,
        "improvement": res.improvement,
        "accepted": float(res.accepted),
        "tries": float(res.tries),
    }


# ----------------------------------------------------------------------------- trainer


@dataclass
class TRPOHistory(TrainHistory):
    """REINFORCE's :class:`~rlcourse.pg.TrainHistory`, plus per update: KL, acceptance, tries, seconds."""

    update_kl: list[float] = field(default_factory=list)
    update_accepted: list[float] = field(default_factory=list)
    update_tries: list[float] = field(default_factory=list)
    update_seconds: list[float] = field(default_factory=list)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / (std + 1e-8)`` over the batch, shape ``(T,) -> (T,)``."""
    return (x - x.mean()) / (x.std() + 1e-8)


def train_trpo(cfg: TRPOConfig, progress: bool = False) -> tuple[CategoricalPolicy, TRPOHistory]:
    """Train with TRPO (or vanilla PG, ``cfg.update``); returns the policy and a :class:`TRPOHistory`."""
    device = torch.device(cfg.device) if cfg.device else get_device()
    torch.manual_seed(cfg.seed)
    envs = make_envs(cfg.env_id, cfg.episodes_per_batch)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, cfg.hidden).to(device)
    value_fn: nn.Module = ValueNet(obs_dim, cfg.hidden).to(device)
    vf_opt = torch.optim.Adam(value_fn.parameters(), lr=cfg.vf_lr)
    hist, steps, t0 = TRPOHistory(), 0, time.perf_counter()
    it = progress_bar(range(cfg.iterations), progress, f"{cfg.update} seed {cfg.seed}")
    for i in it:
        ep = collect_episodes(envs, policy, seed=cfg.seed if i == 0 else None)
        steps = hist.record(ep, steps)
        rtg = reward_to_go(ep.rewards, ep.dones, cfg.gamma)
        with torch.no_grad():
            adv = normalize(rtg - value_fn(ep.obs))
        t1 = time.perf_counter()
        stats = trpo_step(policy, PolicyBatch(ep.obs, ep.actions, adv), cfg)
        hist.update_seconds.append(time.perf_counter() - t1)
        hist.update_kl.append(stats["kl"])
        hist.update_accepted.append(stats["accepted"])
        hist.update_tries.append(stats["tries"])
        fit_value(value_fn, vf_opt, ep.obs, rtg, cfg.vf_iters)
    envs.close()
    hist.seconds = time.perf_counter() - t0
    return policy, hist
