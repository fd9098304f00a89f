"""One PPO gradient step on CartPole's networks: separate tensors + torch.optim.Adam vs rlcourse.flat.

Both sides compute the same step (clipped surrogate + value loss on a 256-transition batch, global
gradient-norm clipping to 0.5, Adam with eps 1e-5) from the same weights, in the same run, one thread:

- "separate": ``zero_grad()``, ``backward()``, ``nn.utils.clip_grad_norm_`` and ``torch.optim.Adam``
  over the dozen weight tensors of the policy and value networks;
- "flat": the weights as views into one tensor (``rlcourse.flat.flat_parameters``), clipped with
  two tensor ops and updated by ``rlcourse.flat.FlatAdam`` -- what ``rlcourse.ppo.train_ppo`` does.

Prints microseconds per step and the ratio, three times.
    python benchmarks/ppo_step.py
"""

from __future__ import annotations

import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rlcourse.flat import FlatAdam, flat_parameters  # noqa: E402
from rlcourse.policies import CategoricalPolicy, ValueNet  # noqa: E402
from rlcourse.ppo import clipped_surrogate_loss  # noqa: E402

BATCH, HIDDEN, MAX_GRAD_NORM = 256, (64, 64), 0.5


def networks() -> tuple[CategoricalPolicy, ValueNet]:
    torch.manual_seed(0)
    return CategoricalPolicy(4, 2, HIDDEN), ValueNet(4, HIDDEN)


def time_us(step, n: int = 1000) -> float:
    for _ in range(100):
        step()
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    obs, actions = torch.randn(BATCH, 4, generator=g), torch.randint(0, 2, (BATCH,), generator=g)
    advantages, returns = torch.randn(BATCH, generator=g), torch.randn(BATCH, generator=g)
    (pi_a, vf_a), (pi_b, vf_b) = networks(), networks()
    with torch.no_grad():
        logp_old = pi_a.log_prob(obs, actions)

    def loss(pi: CategoricalPolicy, vf: ValueNet) -> torch.Tensor:
        pg = clipped_surrogate_loss(pi.log_prob(obs, actions), logp_old, advantages, 0.2)
        return pg + 0.5 * F.mse_loss(vf(obs), returns)

    params = [*pi_a.parameters(), *vf_a.parameters()]
    adam = torch.optim.Adam(params, lr=1e-3, eps=1e-5)

    def separate() -> None:
        adam.zero_grad()
        loss(pi_a, vf_a).backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        adam.step()

    flat = flat_parameters(pi_b, vf_b)
    flat_adam = FlatAdam(flat, lr=1e-3, eps=1e-5)

    def flat_step() -> None:
        flat.grad.zero_()
        loss(pi_b, vf_b).backward()
        flat.grad.mul_((MAX_GRAD_NORM / (flat.grad.norm() + 1e-6)).clamp(max=1.0))
        flat_adam.step()

    print(f"torch {torch.__version__}, 1 thread; one PPO gradient step, batch {BATCH}, hidden {HIDDEN}")
    for _ in range(3):
        a, b = time_us(separate), time_us(flat_step)
        print(f"separate + torch.optim.Adam {a:6.0f} us   flat + FlatAdam {b:6.0f} us   ratio {a / b:.2f}x")


if __name__ == "__main__":
    main()
