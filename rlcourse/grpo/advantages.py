"""Advantages from a group of rewards: GRPO's group-relative one and RLOO's leave-one-out one (chapters 08, 11).

Rewards are ``(n_prompts * G,)`` with each prompt's G completions contiguous (the order
:func:`rlcourse.lm.generate.generate` returns with ``num_samples=G``).
"""

from __future__ import annotations

import torch

from rlcourse.checks import check_finite


def _check_groups(rewards: torch.Tensor, group_size: int, name: str = "rewards") -> None:
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (n_prompts * group_size,), got {type(rewards).__name__}; "
            f"wrap it with torch.tensor({name}, dtype=torch.float32)"
        )
    if rewards.dim() != 1:
        raise ValueError(
            f"{name} must have shape (n_prompts * group_size,), got shape {tuple(rewards.shape)}"
        )
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if rewards.numel() == 0:
        raise ValueError(f"{name} is empty: sample at least one group of completions")
    if rewards.numel() % group_size != 0:
        raise ValueError(
            f"{rewards.numel()} {name} do not split into groups of {group_size}: "
            f"{name} must hold n_prompts * group_size values, each prompt's completions contiguous"
        )
    if rewards.dtype == torch.bool:
        raise TypeError(f"{name} is a bool tensor; convert it with {name}.float()")
    check_finite(name, rewards)


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """Advantage of each completion relative to its own group (GRPO, chapter 08).

    Args:
        rewards: shape ``(n_prompts * group_size,)``, groups contiguous.
        group_size: G, the number of completions per prompt.
        scale: divide by the group's std (+ eps). ``False`` gives Dr. GRPO's ``r - mean``
            (TRL: ``scale_rewards="none"``).
        eps: added to the std, 1e-4 as in TRL.

    Returns:
        ``(n_prompts * group_size,)``: ``(r - mean_g) / (std_g + eps)`` with the std's N - 1 denominator
        (Bessel's correction, TRL's convention), or ``r - mean_g`` when ``scale=False``. With
        ``group_size=1`` the std is undefined; it is taken as 0 (every advantage is 0).
    """
    _check_groups(rewards, group_size)
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        centred = centred / (std + eps)
    return centred.reshape(-1).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def rloo_advantages(rewards: torch.Tensor, group_size: int, normalize: bool = False) -> torch.Tensor:
    """REINFORCE leave-one-out (RLOO; Kool et al. 2019, Ahmadian et al. 2024; chapter 11).

    ``A_i = r_i - mean_{j != i} r_j`` within each contiguous group: the baseline of a completion is the
    mean reward of its G - 1 siblings, so it does not depend on the completion itself and the
    policy gradient stays unbiased (chapter 02's baseline argument). Since
    ``r_i - mean_{j != i} r_j = G / (G - 1) * (r_i - mean_j r_j)``, RLOO is Dr. GRPO's ``r - mean`` scaled
    by ``G / (G - 1)``: including the sample in its own baseline shrinks the gradient by ``(G - 1) / G``.

    Args:
        rewards: ``(n_prompts * group_size,)``, groups contiguous.
        group_size: G >= 2 (one completion has no siblings).
        normalize: then ``(A - mean(A)) / (std(A) + 1e-4)`` over the whole batch (TRL's RLOOConfig
            ``normalize_advantages=True``).

    Returns:
        ``(n_prompts * group_size,)`` float advantages, equal to TRL 1.16's ``RLOOTrainer`` (checked in
        ``tests/test_trl_parity_variants.py``).
    """
    _check_groups(rewards, group_size)
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for a leave-one-out baseline, got {group_size}")
    grouped = rewards.float().view(-1, group_size)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    adv = (grouped - baseline).reshape(-1)
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-4)
    return adv


def equal_groups(rewards: torch.Tensor, group_size: int, atol: float = 1e-6) -> torch.Tensor:
    """``(n_prompts,)`` bool: True where every reward of the group is equal (zero advantage, no gradient)."""
    _check_groups(rewards, group_size)
    grouped = rewards.float().view(-1, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values) <= atol


def all_equal_fraction(rewards: torch.Tensor, group_size: int, atol: float = 1e-6) -> float:
    """Fraction of groups whose rewards are all equal: their advantages are 0, so they give no gradient.

    rewards: ``(n_prompts * group_size,)``, groups contiguous. Returns a float in [0, 1]. (TRL logs the
    same quantity as ``frac_reward_zero_std``.)
    """
    return equal_groups(rewards, group_size, atol).float().mean().item()


def check_reward_output(rewards, n: int, fn=None) -> torch.Tensor:
    """Check what a reward function returned against its contract: a float tensor of shape ``(n,)``, finite.

    ``n`` is ``n_prompts * G``, the rows of the rollout. Returns the rewards as float32.
    """
    name = getattr(fn, "__qualname__", None) or "the reward function"
    contract = (
        f"a reward function must return a float torch.Tensor of shape (B * G,) = ({n},), one reward per row"
    )
    if not isinstance(rewards, torch.Tensor):
        what = type(rewards).__name__
        if isinstance(rewards, (list, tuple)):
            what += f" of {len(rewards)} items"
        raise TypeError(
            f"{contract}; {name!r} returned a {what}. Fix: return torch.tensor(values, dtype=torch.float32)"
        )
    if tuple(rewards.shape) != (n,):
        raise ValueError(f"{contract}; {name!r} returned shape {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        raise TypeError(f"{contract}; {name!r} returned dtype {rewards.dtype}. Fix: return rewards.float()")
    check_finite(f"rewards returned by {name!r}", rewards)
    return rewards.float()
