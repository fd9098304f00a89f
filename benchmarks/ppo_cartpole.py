"""rlcourse's PPO against Stable-Baselines3's PPO on CartPole-v1, same hyperparameters, same run.

Both use rl-zoo's tuned CartPole-v1 settings (8 envs, n_steps 32, batch 256, gamma 0.98,
gae_lambda 0.8, 20 epochs, lr 1e-3 and clip 0.2 both annealed linearly over 1e5 steps, no entropy
bonus, separate 64-64 tanh policy and value networks) and one torch thread. For each seed we count
env steps and wall seconds until the mean return of the last 20 episodes first reaches 475.

Both implement the same algorithm with the same settings, so their env steps to the target follow the
same distribution, with a long tail: three seeds (the default) cannot separate them. Seed s seeds env i
with s + i and torch with s in both, but that does not pair the runs: the two libraries draw their
initial weights in a different order, and even from identical weights (checked: one update agrees to
~1e-7) rounding differences grow through Adam's steps until the runs part ways after a few thousand env
steps. Measured over 60 seeds each: median env steps 30,544 (rlcourse) vs 30,772 (SB3), while the three
default seeds have given anything from 0.99x to 1.17x as float rounding changed. ``--seeds 10`` gives a
steadier picture; the last lines also print the wall and CPU time per env step, the cost of an
implementation independent of how lucky a seed was.

Timing is fair to both: the first ``torch.optim.Adam()`` of a process costs ~1 s of lazy imports,
so one throwaway Adam is created before either library is timed; each timed region then covers
building the model and environments and training, until the target is reached.

    python benchmarks/ppo_cartpole.py [--seeds 3] [--target 475]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import deque

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rlcourse.ppo import PPOConfig, train_ppo  # noqa: E402

TOTAL_TIMESTEPS = 100_000  # rl-zoo's n_timesteps: the lr and clip schedules decay over this
WINDOW = 20


def run_rlcourse(seed: int, target: float) -> int | None:
    res = train_ppo(
        PPOConfig(seed=seed, total_timesteps=TOTAL_TIMESTEPS, target_return=target, window=WINDOW),
        device="cpu",  # like SB3 below: a CPU benchmark (tiny MLPs gain nothing from a GPU)
    )
    return res.solved_step


def run_sb3(seed: int, target: float) -> int | None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.utils import LinearSchedule

    class StopAtTarget(BaseCallback):
        """Stop as soon as the mean of the last WINDOW episode returns reaches the target."""

        def __init__(self) -> None:
            super().__init__()
            self.returns: deque[float] = deque(maxlen=WINDOW)
            self.solved_step: int | None = None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:  # added by the Monitor wrapper when an episode ends
                    self.returns.append(info["episode"]["r"])
                    if len(self.returns) == WINDOW and sum(self.returns) / WINDOW >= target:
                        self.solved_step = self.num_timesteps
                        return False
            return True

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
        learning_rate=LinearSchedule(1e-3, 0.0, 1.0), clip_range=LinearSchedule(0.2, 0.0, 1.0),
        seed=seed, device="cpu", verbose=0,
    )  # fmt: skip
    callback = StopAtTarget()
    model.learn(total_timesteps=TOTAL_TIMESTEPS, callback=callback)
    return callback.solved_step


def timed(fn, seed: int, target: float) -> tuple[int | None, float, float]:
    """(env steps to the target or None, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    steps = fn(seed, target)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return steps, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=475.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # pay the lazy imports outside the timings
    import stable_baselines3

    print(
        f"torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, 1 thread, "
        f"{os.cpu_count()} cores; target: mean of the last {WINDOW} returns >= {args.target}"
    )
    runs: dict[str, list[tuple[int | None, float, float]]] = {"rlcourse": [], "sb3": []}
    for seed in range(args.seeds):
        for name, fn in (("rlcourse", run_rlcourse), ("sb3", run_sb3)):  # interleaved: same load for both
            steps, wall, cpu = timed(fn, seed, args.target)
            runs[name].append((steps, wall, cpu))
            print(
                f"seed {seed} {name:8s}: env steps {steps or 'not reached':>11}  wall {wall:6.2f} s  cpu {cpu:6.2f} s"
            )
    print()
    medians = {}
    for name, rows in runs.items():
        done = [r for r in rows if r[0] is not None]
        if len(done) < len(rows):
            print(f"{name}: reached the target in {len(done)} of {len(rows)} seeds (medians over those)")
        if done:
            medians[name] = [statistics.median(col) for col in zip(*done, strict=True)]
            steps, wall, cpu = medians[name]
            print(f"{name:8s} median: env steps {steps:8.0f}  wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    per_step = {}  # name -> (wall, CPU) microseconds per env step over all seeds that reached the target
    for name, rows in runs.items():
        done = [r for r in rows if r[0] is not None]
        if done:
            steps = sum(r[0] for r in done)
            per_step[name] = (sum(r[1] for r in done) / steps * 1e6, sum(r[2] for r in done) / steps * 1e6)
            print(
                f"{name:8s} per env step (all seeds): wall {per_step[name][0]:6.1f} us  cpu {per_step[name][1]:6.1f} us"
            )
    if len(medians) == 2:
        (s1, w1, c1), (s2, w2, c2) = medians["rlcourse"], medians["sb3"]
        (pw1, pc1), (pw2, pc2) = per_step["rlcourse"], per_step["sb3"]
        print(
            f"ratio rlcourse/sb3: env steps {s1 / s2:.2f}x, wall time {w1 / w2:.2f}x, cpu time {c1 / c2:.2f}x; "
            f"per env step: wall {pw1 / pw2:.2f}x, cpu {pc1 / pc2:.2f}x"
        )


if __name__ == "__main__":
    main()
