"""The pieces of a TRPO update (chapter 03): flat parameters, KL, Fisher-vector products, CG, line search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from rlcourse.checks import check_finite, check_int, check_number
from rlcourse.policies import CategoricalPolicy

# ----------------------------------------------------------------------------- flat parameters


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate parameters into one detached vector ``(P,)``."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy a vector ``(P,)`` back into ``params`` (in place)."""
    n = sum(p.numel() for p in params)
    if flat.shape != (n,):
        raise ValueError(f"flat parameter vector must have shape ({n},), got {tuple(flat.shape)}")
    check_finite("flat", flat)
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
    check_number("damping", damping, low=0.0, fix="use e.g. 0.1 (Spinning Up's default), or 0 for none")
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
    check_int("iters", iters, low=1, fix="use e.g. 10 (TRPO's usual number of CG iterations)")
    check_number("tol", tol, low=0.0, fix="use e.g. 1e-10, or 0 to always run all iterations")
    check_finite("b", b)
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
    check_number("max_kl", max_kl, low=0.0, low_open=True, fix="use the trust-region radius delta, e.g. 0.01")
    check_int("backtrack_iters", backtrack_iters, low=1, fix="use e.g. 10")
    check_number(
        "backtrack_coef", backtrack_coef, low=0.0, high=1.0, low_open=True, high_open=True, fix="use e.g. 0.8"
    )
    check_number("surrogate_old", surrogate_old, fix="pass the surrogate's value at the old parameters")
    check_finite("full_step", full_step)
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
