"""CPU threads for the course's tiny models: time one training step with 1..N threads, same run.

Prints ms per step and the ratio to one thread. The figure behind rlcourse.device's default.
    python benchmarks/threads.py
"""

from __future__ import annotations

import os
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def time_steps(threads: int, steps: int = 30, batch: int = 16, seq: int = 32) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=64, n_positions=64, n_embd=64, n_layer=2, n_head=4, activation_function="gelu"
    )
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 64, (batch, seq))
    for i in range(steps + 5):
        if i == 5:
            t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def _spin(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


if __name__ == "__main__":
    import multiprocessing as mp

    n_params = sum(
        p.numel()
        for p in GPT2LMHeadModel(
            GPT2Config(vocab_size=64, n_positions=64, n_embd=64, n_layer=2, n_head=4)
        ).parameters()
    )
    print(
        f"GPT-2 with {n_params:,} parameters, batch 16 x 32 tokens, torch {torch.__version__}, {os.cpu_count()} cores"
    )
    base = None
    for t in range(1, (os.cpu_count() or 1) + 1):
        ms = time_steps(t)
        base = base or ms
        print(f"idle machine       threads={t}: {ms:7.1f} ms/step  ({ms / base:.2f}x one thread)")
    # A laptop running JupyterLab, a browser or a second notebook rarely has a core to spare.
    spinner = mp.Process(target=_spin, args=(60.0,), daemon=True)
    spinner.start()
    base = None
    for t in range(1, (os.cpu_count() or 1) + 1):
        ms = time_steps(t)
        base = base or ms
        print(f"one core kept busy threads={t}: {ms:7.1f} ms/step  ({ms / base:.2f}x one thread)")
    spinner.terminate()
