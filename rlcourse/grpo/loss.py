"""GRPO's clipped loss and its variants: normalisations, clip-higher, two-sided clip, GSPO, CISPO (chapters 08, 11).

Names and formulas follow TRL 1.16's ``GRPOTrainer._compute_loss`` (checked to 1e-5 in
``tests/test_trl_parity.py`` and ``tests/test_trl_parity_variants.py``):

- ``loss_type`` picks how per-token losses become one number (:func:`token_weights`) and, for
  ``"cispo"``, the per-token loss itself;
- ``clip_eps`` / ``clip_eps_high`` are TRL's ``epsilon`` / ``epsilon_high`` (DAPO's clip-higher);
- ``importance_sampling_level="sequence"`` is GSPO: one ratio per completion,
  ``exp(mean_t (logp - old_logp))``;
- ``delta`` is INTELLECT-2's two-sided clip: the unclipped ratio is capped at ``delta`` before the min.
"""

from __future__ import annotations

import warnings

import torch

from rlcourse.checks import check_choice, check_finite, check_number
from rlcourse.lm.kl import kl_k3

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo")
IS_LEVELS = ("token", "sequence")


def combination_warning(loss_type: str, importance_sampling_level: str) -> str | None:
    """TRL's warning for a sequence-level ratio with a token-summing loss, or None when the pair is fine."""
    if importance_sampling_level == "sequence" and loss_type in ("bnpo", "dr_grpo", "dapo", "cispo"):
        return (
            f"importance_sampling_level='sequence' with loss_type={loss_type!r}: this loss sums per-token "
            "contributions, which effectively weights each sequence by its completion length instead of "
            "optimizing the per-sequence objective. To reproduce the GSPO paper's setup, set loss_type='grpo' "
            "(TRL 1.16 warns the same)."
        )
    return None


def check_loss_options(
    clip_eps: float,
    beta: float,
    loss_type: str,
    clip_eps_high: float | None,
    importance_sampling_level: str,
    delta: float | None,
    owner: str | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """Validate the loss's options (one message style; ``names`` maps to a config's field names)."""
    n = {"clip_eps": "clip_eps", "beta": "beta", "clip_eps_high": "clip_eps_high", "delta": "delta"}
    n.update(names or {})
    check_number(
        n["clip_eps"], clip_eps, low=0, low_open=True, owner=owner, fix="use 0.2 (PPO, GRPO, TRL's default)"
    )
    check_number(n["beta"], beta, low=0, owner=owner, fix="use 0.0 (TRL's default) or 0.04 (DeepSeekMath)")
    check_choice("loss_type", loss_type, LOSS_TYPES, owner=owner)
    check_choice("importance_sampling_level", importance_sampling_level, IS_LEVELS, owner=owner)
    if clip_eps_high is not None:
        fix = "5.0 for loss_type='cispo' (ScaleRL), 0.28 otherwise (DAPO)"
        check_number(n["clip_eps_high"], clip_eps_high, low=0, low_open=True, owner=owner, fix=fix)
    if delta is not None:
        check_number(
            n["delta"], delta, low=0, low_open=True, owner=owner, fix="use a cap above 1 + clip_eps, e.g. 4"
        )
        if loss_type == "cispo":
            warnings.warn(
                f"delta={delta!r} has no effect with loss_type='cispo' (TRL applies the two-sided clip only to "
                "the clipped-surrogate losses); remove it",
                UserWarning,
                stacklevel=3,
            )
    if loss_type == "cispo" and clip_eps_high is None:
        warnings.warn(
            f"loss_type='cispo' without clip_eps_high: CISPO's cap is absolute (ratio <= clip_eps_high), so the "
            f"fallback clip_eps={clip_eps!r} (TRL's too) caps every importance weight at {clip_eps!r}; "
            "set clip_eps_high=5.0 (ScaleRL)",
            UserWarning,
            stacklevel=3,
        )
    message = combination_warning(loss_type, importance_sampling_level)
    if message:
        warnings.warn(message, UserWarning, stacklevel=3)


def _check_token_tensors(completion_mask: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    if not isinstance(completion_mask, torch.Tensor) or completion_mask.dim() != 2:
        shape = (
            tuple(completion_mask.shape)
            if isinstance(completion_mask, torch.Tensor)
            else type(completion_mask)
        )
        raise ValueError(f"completion_mask must be a tensor of shape (B, T), got {shape}")
    if completion_mask.numel() == 0:
        raise ValueError("completion_mask is empty: the batch needs at least one completion token")
    for name, t in tensors.items():
        if t is not None and t.shape != completion_mask.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but completion_mask has shape {tuple(completion_mask.shape)}; "
                "all per-token tensors must be (B, T) and aligned with the completion mask"
            )


def token_weights(
    completion_mask: torch.Tensor,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_items_in_batch: float | None = None,
) -> torch.Tensor:
    """The weight each token's loss gets in the batch's scalar loss, for each normalisation.

    ``loss = sum_{i,t} w_{i,t} * per_token_loss_{i,t}``. For a completion of length L_i in a batch of B:

    - ``"grpo"``: w = 1 / (B * L_i). Each *sequence* weighs 1/B, so a token of a long completion weighs
      less than a token of a short one (Dr. GRPO's length bias).
    - ``"bnpo"``: w = 1 / sum_i L_i, the same for every token of the (local) batch.
    - ``"dr_grpo"``: w = 1 / (B * T_max), a constant that does not depend on the batch's lengths.
    - ``"dapo"``, ``"cispo"``: w = 1 / num_items_in_batch, the number of completion tokens in the whole
      generation batch (TRL's ``num_items_in_batch``; defaults to this batch's, then equal to ``"bnpo"``).

    completion_mask: ``(B, T)`` with 1 on completion tokens. Returns ``(B, T)`` weights (0 off the mask).
    """
    _check_token_tensors(completion_mask)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    mask = completion_mask.float()
    B, T = mask.shape
    if loss_type == "grpo":
        return mask / (B * mask.sum(dim=1, keepdim=True).clamp(min=1.0))
    if loss_type == "bnpo":
        return mask / mask.sum().clamp(min=1.0)
    if loss_type in ("dapo", "cispo"):
        n = mask.sum() if num_items_in_batch is None else torch.tensor(float(num_items_in_batch))
        return mask / n.clamp(min=1.0)
    T_max = T if max_completion_length is None else max_completion_length
    if T_max < T:
        raise ValueError(f"max_completion_length={T_max} is shorter than the tensors' width T={T}")
    return mask / (B * T_max)


def importance_ratio(
    logp: torch.Tensor, old_logp: torch.Tensor, completion_mask: torch.Tensor, level: str = "token"
) -> torch.Tensor:
    """The importance ratio pi / pi_old: ``(B, T)`` per token, or ``(B, 1)`` per sequence (GSPO).

    ``"sequence"``: ``exp(mean over the completion's tokens of (logp - old_logp))``, the geometric mean of
    the token ratios, so a long completion's ratio does not explode as a product would.
    """
    check_choice("importance_sampling_level", level, IS_LEVELS)
    log_ratio = logp - old_logp
    if level == "sequence":
        m = completion_mask.to(log_ratio.dtype)
        log_ratio = torch.where(m.bool(), log_ratio, torch.zeros_like(log_ratio))
        log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    return torch.exp(log_ratio)


def per_token_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    clip_eps_high: float | None = None,
    loss_type: str = "grpo",
    importance_sampling_level: str = "token",
    delta: float | None = None,
    completion_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-token loss before masking and normalisation, and the per-token k3 KL.

    Clipped surrogate (every ``loss_type`` but ``"cispo"``):
    ``-min(min(rho, delta) * A, clip(rho, 1 - eps, 1 + eps_high) * A) + beta * k3``.
    CISPO: ``-clamp(rho, max=eps_high).detach() * A * logp + beta * k3`` (the weight is clipped, never the
    gradient, and the ratio is never clipped below). ``rho`` per token or per sequence (:func:`importance_ratio`;
    ``completion_mask`` is needed for ``"sequence"``). ``k3 = exp(ref - logp) - (ref - logp) - 1``.
    logp, old_logp, ref_logp: ``(B, T)``; advantages ``(B,)``. Returns two ``(B, T)`` tensors.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    if completion_mask is None:
        completion_mask = torch.ones_like(logp)
    ratio = importance_ratio(logp, old_logp, completion_mask, importance_sampling_level)
    adv = advantages.unsqueeze(1)
    if loss_type == "cispo":
        loss = -torch.clamp(ratio, max=eps_high).detach() * adv * logp
    else:
        clipped = torch.clamp(ratio, 1 - clip_eps, 1 + eps_high)
        if delta is not None:
            ratio = torch.clamp(ratio, max=delta)
        loss = -torch.min(ratio * adv, clipped * adv)
    loss = loss.expand_as(logp)
    if ref_logp is None or beta == 0.0:
        kl = torch.zeros_like(logp)
    else:
        kl = kl_k3(logp, ref_logp)
        loss = loss + beta * kl
    return loss, kl


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    clip_eps_high: float | None = None,
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    delta: float | None = None,
    num_items_in_batch: float | None = None,
) -> torch.Tensor:
    """GRPO's clipped objective (or a variant) with a k3 KL term, reduced to a scalar.

    Args:
        logp: ``(B, T)`` log-probs of the sampled tokens under the policy being trained (with grad).
        old_logp: ``(B, T)`` the same under the policy that sampled (no grad). With one update per batch
            it equals ``logp.detach()``: the ratio is 1 and the loss value starts near 0 although its
            gradient is not zero (trl #2703).
        ref_logp: ``(B, T)`` under the frozen reference model, or None when ``beta == 0``.
        advantages: ``(B,)``, one per completion (:func:`group_advantages`, :func:`rloo_advantages`).
        completion_mask: ``(B, T)``, 1 on the completion's tokens (through ``<eos>``), 0 on padding.
        clip_eps: TRL's ``epsilon``: the ratio is clipped to ``[1 - clip_eps, 1 + clip_eps_high]``.
        beta: weight of the k3 KL to the reference (0.04 in DeepSeekMath; TRL >= 0.19 defaults to 0).
        loss_type: ``"grpo"``, ``"bnpo"``, ``"dr_grpo"``, ``"dapo"`` or ``"cispo"`` (:func:`token_weights`,
            :func:`per_token_grpo_loss`).
        clip_eps_high: TRL's ``epsilon_high``: the upper clip range (DAPO's clip-higher, 0.28); for
            ``"cispo"`` the absolute cap on the ratio (ScaleRL: 5.0). Defaults to ``clip_eps`` as in TRL.
        max_completion_length: the T of ``"dr_grpo"``'s ``B * T``; defaults to the tensors' width.
        importance_sampling_level: ``"token"`` or ``"sequence"`` (GSPO, :func:`importance_ratio`).
        delta: two-sided clip (INTELLECT-2): the unclipped ratio is capped at ``delta``; None = off.
        num_items_in_batch: ``"dapo"``/``"cispo"``'s normaliser (completion tokens in the generation batch);
            defaults to ``completion_mask.sum()``.

    Returns:
        a scalar tensor. Raises ``ValueError`` on NaN/inf in a tensor (on the mask), on an all-zero mask,
        and on options outside their range; warns on the combinations TRL warns about.
    """
    _check_token_tensors(completion_mask, logp=logp, old_logp=old_logp, ref_logp=ref_logp)
    if not isinstance(advantages, torch.Tensor) or advantages.shape != (completion_mask.shape[0],):
        got = tuple(advantages.shape) if isinstance(advantages, torch.Tensor) else type(advantages).__name__
        raise ValueError(f"advantages must have shape (B,) = ({completion_mask.shape[0]},), got {got}")
    check_loss_options(clip_eps, beta, loss_type, clip_eps_high, importance_sampling_level, delta)
    if beta != 0.0 and ref_logp is None:
        raise ValueError("beta != 0 needs ref_logp (the reference model's log-probs); pass it or set beta=0")
    if not bool(completion_mask.any()):
        raise ValueError(
            "completion_mask is all zeros: no completion token to learn from (did mask_truncated_completions "
            "mask every completion? raise max_new_tokens)"
        )
    on = completion_mask.bool()
    for name, t in (("logp", logp), ("old_logp", old_logp), ("ref_logp", ref_logp)):
        if t is not None:
            check_finite(name, t, on)
    check_finite("advantages", advantages)
    # values off the mask must not leak (exp of a padding value can be inf; inf * 0 = nan)
    logp = torch.where(on, logp, torch.zeros_like(logp))
    old_logp = torch.where(on, old_logp, torch.zeros_like(old_logp))
    if ref_logp is not None:
        ref_logp = torch.where(on, ref_logp, logp.detach())
    weights = token_weights(completion_mask, loss_type, max_completion_length, num_items_in_batch).to(
        logp.dtype
    )
    per_token, _ = per_token_grpo_loss(
        logp, old_logp, ref_logp, advantages, clip_eps, beta, clip_eps_high, loss_type,
        importance_sampling_level, delta, completion_mask,
    )  # fmt: skip
    per_token = torch.where(on, per_token, torch.zeros_like(per_token))
    return (per_token * weights).sum()
