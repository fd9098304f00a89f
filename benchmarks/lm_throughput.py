"""Generation and training throughput (tokens/s) of the course's tiny GPT-2, on this machine.

    python benchmarks/lm_throughput.py [--quick]

Prints, for 1 and 2 CPU threads (and CUDA when present):
- generation: ``rlcourse.lm.generate`` (KV cache, each prompt encoded once and its cache repeated for the
  G samples) against a naive loop that re-runs the whole sequence for every new token;
- training: one SFT step (forward + backward + AdamW) on a batch of reviews.
The figures behind ``rlcourse.device``'s one-thread default and ``generate``'s cache design. Numbers on
a shared machine are inflated by the other processes' load; run it on an idle machine to compare.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from rlcourse.lm.generate import generate
from rlcourse.lm.model import count_parameters, init_model
from rlcourse.lm.sft import sft_batch, sft_loss
from rlcourse.lm.tasks import ReviewTask
from rlcourse.lm.tokenizer import build_tokenizer, encode_prompts


@torch.no_grad()
def naive_generate(model, tokenizer, prompts, max_new_tokens, num_samples, generator):
    """Sampling without a cache: every step re-runs the model on the whole (left-padded) sequence."""
    ids, mask = encode_prompts(tokenizer, prompts, next(model.parameters()).device)
    ids, mask = ids.repeat_interleave(num_samples, 0), mask.repeat_interleave(num_samples, 0)
    for _ in range(max_new_tokens):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        ids = torch.cat([ids, tok], 1)
        mask = torch.cat([mask, torch.ones_like(tok)], 1)
    return ids


def _timeit(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def run(device: torch.device, threads: int | None, quick: bool) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    tok = build_tokenizer()
    model = init_model(tok, seed=0).to(device).eval()
    task = ReviewTask()
    prompts = task.prompts(16, seed=0)
    G, L = 8, 32
    g = torch.Generator(device=device).manual_seed(0)
    reps = 1 if quick else 2
    label = f"{device.type}" + (f" threads={threads}" if threads else "")

    def cached():
        return generate(model, tok, prompts, max_new_tokens=L, num_samples=G, generator=g, temperature=1.0)

    def naive():
        return naive_generate(model, tok, prompts, L, G, g)

    n_tokens = len(prompts) * G * L
    t_cached = _timeit(cached, reps, device)
    t_naive = _timeit(naive, reps, device)
    print(
        f"{label:18s} generate {len(prompts)} prompts x G={G} x {L} tokens: "
        f"KV cache {n_tokens / t_cached:9.0f} tok/s | recompute {n_tokens / t_naive:9.0f} tok/s "
        f"({t_naive / t_cached:.1f}x)"
    )

    train = init_model(tok, seed=0).to(device).train()
    opt = torch.optim.AdamW(train.parameters(), lr=1e-3)
    reviews = task.sample_reviews(64, np.random.default_rng(0))
    batch = sft_batch(tok, [""] * len(reviews), reviews, device)

    def step():
        loss = sft_loss(train, *batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_step = _timeit(step, 3 if quick else 10, device)
    n_train = int(batch[1].sum())
    print(
        f"{label:18s} train step, batch 64 reviews ({n_train} tokens): {n_train / t_step:9.0f} tok/s "
        f"({t_step * 1000:.1f} ms/step)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    tok = build_tokenizer()
    print(
        f"tiny GPT-2 with {count_parameters(init_model(tok)):,} parameters, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores"
    )
    for threads in (1, 2):
        run(torch.device("cpu"), threads, args.quick)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
        run(torch.device("cuda"), None, args.quick)


if __name__ == "__main__":
    main()
