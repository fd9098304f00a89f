"""DPO's loss, the chosen-answer NLL and the closed-form optimum (chapter 09, sections 1-3).

Every function checks its inputs: shapes, dtypes, finiteness (a NaN log-prob names the tensor and the
first bad index) and ``beta > 0``; see :mod:`rlcourse.checks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlcourse.checks import check_choice, check_finite, check_float, check_number

LOSS_TYPES = ("sigmoid", "ipo", "hinge")

_BETA_FIX = "beta is the strength of the implicit KL regularisation; use 0.1 (TRL's default)"


def check_beta(beta: float, owner: str | None = None) -> float:
    """``beta`` as a float if it is a finite number > 0, else a ``ValueError`` naming it.

    beta = 0 makes the sigmoid loss the constant log 2 (no gradient) and IPO's ``1 / (2 beta)`` infinite.
    """
    return check_number("beta", beta, low=0, low_open=True, owner=owner, fix=_BETA_FIX)


def _check_pair_tensors(**tensors: torch.Tensor) -> int:
    for name, t in tensors.items():
        check_float(name, t)
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 1:
        raise ValueError(f"DPO log-probs must be 1-D, one per pair (shape (B,)); got shapes {shapes}")
    if first[0] == 0:
        raise ValueError("the batch is empty: pass at least one preference pair")
    if any(s != first for s in shapes.values()):
        raise ValueError(f"all four log-prob tensors must have the same shape (B,); got {shapes}")
    for name, t in tensors.items():
        check_finite(name, t)
    return first[0]


def _check_lengths(batch: int, **lengths: torch.Tensor) -> None:
    for name, n in lengths.items():
        if not isinstance(n, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of token counts, shape ({batch},); got {type(n).__name__}"
            )
        if tuple(n.shape) != (batch,):
            raise ValueError(
                f"{name} must have shape ({batch},), one token count per pair; got {tuple(n.shape)}"
            )
        if bool((n < 1).any()):
            i = int((n < 1).nonzero()[0])
            raise ValueError(
                f"{name} must be >= 1 (a completion has at least its <eos>), got {n[i].item()} at index {i}"
            )


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of preference pairs, and the implicit rewards (chapter 09, section 2).

    Args:
        policy_chosen_logps, policy_rejected_logps: ``(B,)`` summed completion log-probs of the chosen
            (preferred) and rejected answers under the policy being trained (with grad).
        ref_chosen_logps, ref_rejected_logps: ``(B,)`` the same under the frozen reference model.
        beta: > 0, the strength of the implicit KL regularisation; small beta lets the policy move far.
        loss_type: ``"sigmoid"`` (DPO) ``-logsigmoid(beta * delta)``; ``"hinge"`` (SLiC)
            ``relu(1 - beta * delta)``; ``"ipo"`` ``(delta_avg - 1 / (2 beta))^2`` with per-token averaged
            log-ratios (see the package docstring). ``delta`` = chosen log-ratio - rejected log-ratio.
        chosen_lengths, rejected_lengths: ``(B,)`` completion token counts; only ``"ipo"`` uses them.

    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the scalar mean loss and the detached implicit
        rewards ``beta * (logp - ref_logp)``, each ``(B,)``. At initialisation (policy = reference) the
        sigmoid loss is ``log 2 = 0.693``.

    Raises:
        ValueError naming the argument: ``beta <= 0``, an unknown ``loss_type``, shapes that differ, a NaN or
        inf log-prob (with its index). TypeError: integer log-probs.
    """
    check_choice("loss_type", loss_type, LOSS_TYPES)
    beta = check_beta(beta)
    batch = _check_pair_tensors(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * (chosen_logratios - rejected_logratios))
    else:
        if (chosen_lengths is None) != (rejected_lengths is None):
            raise ValueError("pass both chosen_lengths and rejected_lengths, or neither")
        c, r = chosen_logratios, rejected_logratios
        if chosen_lengths is not None:
            _check_lengths(batch, chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
            c = c / chosen_lengths.to(c.dtype)
            r = r / rejected_lengths.to(r.dtype)
        losses = (c - r - 1 / (2 * beta)) ** 2
    return losses.mean(), beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def chosen_nll(per_token_logps: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the chosen answers: ``-log pi`` averaged over all their completion tokens.

    ``sum_i sum_t -log pi(y_w,i,t) / sum_i |y_w,i|`` — one mean over every chosen token of the batch (TRL's
    ``"sft"`` DPO loss term), so a long answer weighs more than a short one. (The RPO paper normalises per
    answer, ``mean_i [-log pi(y_w,i) / |y_w,i|]``; the two agree when all chosen answers have one length.)

    per_token_logps, completion_mask: ``(B, T)``. Returns a scalar. A NaN at a masked-out position is
    ignored; one on a completion token is refused.
    """
    check_float("per_token_logps", per_token_logps)
    if per_token_logps.shape != completion_mask.shape or per_token_logps.dim() != 2:
        raise ValueError(
            f"per_token_logps {tuple(per_token_logps.shape)} and completion_mask {tuple(completion_mask.shape)} "
            "must both be (B, T)"
        )
    mask = completion_mask.bool()
    if not mask.any():
        raise ValueError("completion_mask has no completion tokens: nothing to take the NLL of")
    check_finite("per_token_logps", per_token_logps, mask)
    return -per_token_logps[mask].mean()


def closed_form_optimum(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """The optimum of ``E_pi[r] - beta KL(pi || pi_ref)`` over a finite set of answers (chapter 09, section 1).

    ``pi*(y) = pi_ref(y) exp(r(y) / beta) / Z``. ref_probs, rewards: ``(..., K)`` over K answers (one row
    per prompt); ref_probs >= 0 (an answer with ``pi_ref = 0`` stays impossible). Returns ``(..., K)``
    probabilities.
    """
    beta = check_beta(beta)
    check_float("ref_probs", ref_probs)
    check_float("rewards", rewards)
    if ref_probs.shape != rewards.shape:
        raise ValueError(f"ref_probs {tuple(ref_probs.shape)} and rewards {tuple(rewards.shape)} must match")
    check_finite("ref_probs", ref_probs)
    check_finite("rewards", rewards)
    if bool((ref_probs < 0).any()):
        i = tuple(int(k) for k in (ref_probs < 0).nonzero()[0])
        raise ValueError(f"ref_probs must be >= 0 (probabilities), got {ref_probs[i].item()} at index {i}")
    return torch.softmax(torch.log(ref_probs) + rewards / beta, dim=-1)
