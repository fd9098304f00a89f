"""Small policy and value networks for discrete gymnasium environments (chapters 02-04).

Every toy-track chapter uses the same two networks, so they live one floor below the algorithms:

- :class:`CategoricalPolicy` maps observations ``(B, obs_dim)`` to action logits ``(B, n_actions)``;
  ``pi(a | s) = softmax(logits)[a]``.
- :class:`ValueNet` maps observations ``(B, obs_dim)`` to state values ``(B,)``.

Both are tanh MLPs with orthogonal initialisation, CleanRL's recipe: hidden layers with gain
``sqrt(2)``, the policy head with gain 0.01 (so the first policy is almost uniform) and the value
head with gain 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float = 1.0) -> nn.Sequential:
    """A tanh MLP ``in_dim -> hidden... -> out_dim`` with orthogonal weights and zero biases.

    Hidden layers use gain ``sqrt(2)``; the last layer uses ``out_gain``.
    """
    if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
        raise ValueError(
            f"layer sizes must be positive, got in={in_dim}, hidden={list(hidden)}, out={out_dim}"
        )
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [_ortho(nn.Linear(a, b), math.sqrt(2.0)), nn.Tanh()]
    layers.append(_ortho(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def _ortho(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _check_obs(obs: torch.Tensor, obs_dim: int, who: str) -> None:
    if obs.ndim != 2 or obs.shape[1] != obs_dim:
        raise ValueError(f"{who} expects observations of shape (B, {obs_dim}), got {tuple(obs.shape)}")


class CategoricalPolicy(nn.Module):
    """pi_theta(a | s) for a discrete action space: an MLP giving logits ``(B, n_actions)``."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (64,)):
        super().__init__()
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.net = mlp(obs_dim, hidden, n_actions, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(B, n_actions)``, for observations ``(B, obs_dim)``."""
        _check_obs(obs, self.obs_dim, "CategoricalPolicy")
        return self.net(obs)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a_i | s_i), shape ``(B,)``, for observations ``(B, obs_dim)`` and actions ``(B,)``."""
        if actions.shape != obs.shape[:1]:
            raise ValueError(
                f"actions must have shape ({obs.shape[0]},) to match obs {tuple(obs.shape)}, "
                f"got {tuple(actions.shape)}"
            )
        logp = torch.log_softmax(self(obs), dim=-1)
        return logp.gather(1, actions.long().unsqueeze(1)).squeeze(1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sample one action per row: observations ``(B, obs_dim)`` -> actions ``(B,)`` (int64)."""
        probs = torch.softmax(self(obs), dim=-1)
        return torch.multinomial(probs, 1).squeeze(1)


class ValueNet(nn.Module):
    """V_phi(s): an MLP giving one value per observation, shape ``(B,)``."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (64,)):
        super().__init__()
        self.obs_dim = obs_dim
        self.net = mlp(obs_dim, hidden, 1, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Values, shape ``(B,)``, for observations ``(B, obs_dim)``."""
        _check_obs(obs, self.obs_dim, "ValueNet")
        return self.net(obs).squeeze(-1)
