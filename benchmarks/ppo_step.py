"""What a PPO gradient step on CartPole's networks costs with torch.optim.Adam's own options.

``rlcourse.ppo.train_ppo`` uses plain ``torch.optim.Adam`` + ``nn.utils.clip_grad_norm_`` over the
dozen weight tensors of its policy and value networks. This script times one gradient step (clipped
surrogate + value loss on a 256-transition batch, global gradient-norm clipping to 0.5, Adam with
eps 1e-5, from the same weights) with each of Adam's implementations, one thread, interleaved:

- ``for-loop``: ``torch.optim.Adam(foreach=False)``, one tensor at a time (the CPU default);
- ``foreach``: ``foreach=True``, the update as a few multi-tensor ops (and ``clip_grad_norm_(foreach=True)``);
- ``fused``: ``fused=True``, one fused kernel per step;
- ``flat + hand-written Adam``: every weight a view into one flat tensor, clipped with two tensor
  ops and updated by Adam written out on that tensor -- what ``train_ppo`` did before; kept here,
  and only here, as the measured alternative (it is checked to compute the same step);
- ``forward + backward only``: the floor no optimizer can go below.

Then it times ``train_ppo`` per env step (rollout, GAE and 20 epochs per 256 env steps; no early stop)
with each Adam option. Medians of ``--repeats`` interleaved rounds, CPU time of this process (steadier
than wall time on a shared machine) and wall time.

    python benchmarks/ppo_step.py [--repeats 5] [--env-steps 20480]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rlcourse.ppo.train as ppo_train  # noqa: E402
from rlcourse.policies import CategoricalPolicy, ValueNet  # noqa: E402
from rlcourse.ppo import PPOConfig, clipped_surrogate_loss, train_ppo  # noqa: E402

BATCH, HIDDEN, MAX_GRAD_NORM = 256, (64, 64), 0.5
ADAM_VARIANTS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


# ----- the flat alternative (what train_ppo did before; measured, not used) ---------------------------
def flat_parameters(*modules: nn.Module) -> nn.Parameter:
    """All parameters as views into one flat Parameter ``(P,)`` (and their grads into its grad)."""
    params = [p for m in modules for p in m.parameters()]
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        p.data = flat.data[offset : offset + p.numel()].view_as(p)
        p.grad = flat.grad[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


class FlatAdam:
    """torch.optim.Adam's arithmetic written out on one tensor."""

    def __init__(self, param: torch.Tensor, lr: float, eps: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.param, self.lr, self.eps, self.betas, self.t = param, lr, eps, betas, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    @torch.no_grad()
    def step(self) -> None:
        (b1, b2), g = self.betas, self.param.grad
        self.t += 1
        self.m.lerp_(g, 1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v.sqrt() / math.sqrt(1 - b2**self.t)).add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / (1 - b1**self.t))


# ----- one gradient step ------------------------------------------------------------------------------
def networks() -> tuple[CategoricalPolicy, ValueNet]:
    torch.manual_seed(0)
    return CategoricalPolicy(4, 2, HIDDEN), ValueNet(4, HIDDEN)


def step_functions() -> tuple[dict[str, Callable[[], None]], dict[str, list[torch.Tensor]]]:
    g = torch.Generator().manual_seed(1)
    obs, actions = torch.randn(BATCH, 4, generator=g), torch.randint(0, 2, (BATCH,), generator=g)
    advantages, returns = torch.randn(BATCH, generator=g), torch.randn(BATCH, generator=g)
    with torch.no_grad():
        logp_old = networks()[0].log_prob(obs, actions)

    def loss(pi: CategoricalPolicy, vf: ValueNet) -> torch.Tensor:
        pg = clipped_surrogate_loss(pi.log_prob(obs, actions), logp_old, advantages, 0.2)
        return pg + 0.5 * F.mse_loss(vf(obs), returns)

    steps, weights = {}, {}
    for name, options in ADAM_VARIANTS.items():
        pi, vf = networks()
        params = [*pi.parameters(), *vf.parameters()]
        adam = torch.optim.Adam(params, lr=1e-3, eps=1e-5, **options)
        foreach = options.get("foreach", True)

        def step(adam=adam, params=params, pi=pi, vf=vf, foreach=foreach) -> None:
            adam.zero_grad()
            loss(pi, vf).backward()
            nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM, foreach=foreach)
            adam.step()

        steps[name], weights[name] = step, params

    pi, vf = networks()
    flat = flat_parameters(pi, vf)
    flat_adam = FlatAdam(flat, lr=1e-3, eps=1e-5)

    def flat_step() -> None:
        flat.grad.zero_()
        loss(pi, vf).backward()
        flat.grad.mul_((MAX_GRAD_NORM / (flat.grad.norm() + 1e-6)).clamp(max=1.0))
        flat_adam.step()

    steps["flat + hand-written Adam"], weights["flat + hand-written Adam"] = (
        flat_step,
        [*pi.parameters(), *vf.parameters()],
    )

    pi_fb, vf_fb = networks()

    def forward_backward() -> None:
        for p in (*pi_fb.parameters(), *vf_fb.parameters()):
            p.grad = None
        loss(pi_fb, vf_fb).backward()

    steps["forward + backward only"] = forward_backward
    return steps, weights


def time_step(step: Callable[[], None], n: int) -> tuple[float, float]:
    """(CPU us, wall us) per call, after a warm-up."""
    for _ in range(20):
        step()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        step()
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def time_trainer(options: dict, env_steps: int) -> tuple[float, float]:
    """(CPU us, wall us) per env step of train_ppo with these Adam options."""
    ppo_train.ADAM_OPTIONS = options
    cpu, wall = time.process_time(), time.perf_counter()
    res = train_ppo(PPOConfig(seed=0, total_timesteps=env_steps), device="cpu")
    return (time.process_time() - cpu) / res.env_steps * 1e6, (
        time.perf_counter() - wall
    ) / res.env_steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--env-steps", type=int, default=20_480)
    parser.add_argument("--steps", type=int, default=500, help="gradient steps per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # the first Adam of a process pays for lazy imports
    steps, weights = step_functions()  # first: do all variants compute the same step? (5 steps, same start)
    for step in steps.values():
        for _ in range(5):
            step()
    reference = weights["for-loop"]
    for name, params in weights.items():
        diff = max((p - q).abs().max().item() for p, q in zip(params, reference, strict=True))
        assert diff < 1e-5, f"{name} computed a different step (max weight difference {diff:.2e})"
    steps, _ = step_functions()
    print(f"torch {torch.__version__}, 1 thread; one PPO gradient step, batch {BATCH}, hidden {HIDDEN}")
    print("all variants computed the same 5 steps (weights equal to 1e-5)")
    print(f"median of {args.repeats} interleaved rounds of {args.steps} steps: CPU us (wall us) per step")
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_step(step, args.steps))
    base = statistics.median(c for c, _ in times["for-loop"])
    for name, t in times.items():
        cpu, wall = statistics.median(c for c, _ in t), statistics.median(w for _, w in t)
        print(f"  {name:26s} {cpu:7.0f} us ({wall:7.0f})   {base / cpu:4.2f}x the for-loop Adam's speed")

    print(f"\ntrain_ppo per env step ({args.env_steps} env steps, 20 epochs per 256 env steps), "
          f"median of {args.repeats}: CPU us (wall us)")  # fmt: skip
    chosen = dict(ppo_train.ADAM_OPTIONS)
    per_env = {name: [] for name in ADAM_VARIANTS}
    for _ in range(args.repeats):
        for name, options in ADAM_VARIANTS.items():
            per_env[name].append(time_trainer(options, args.env_steps))
    ppo_train.ADAM_OPTIONS = chosen
    for name, t in per_env.items():
        mark = "  <- train_ppo's choice" if ADAM_VARIANTS[name] == chosen else ""
        cpu, wall = statistics.median(c for c, _ in t), statistics.median(w for _, w in t)
        print(f"  Adam {name:9s} {cpu:6.1f} us ({wall:6.1f}){mark}")


if __name__ == "__main__":
    main()
