"""Time one GRPO step and one DPO step of rlcourse against TRL's GRPOTrainer and DPOTrainer.

    python benchmarks/lm_vs_trl.py [--steps 20] [--model tiny|reviews|arithmetic]

Same tiny GPT-2 (the shipped ``data/arithmetic`` model when it exists, else a random GPT-2 of the same
shape with the course tokenizer), same batch, same run, one CPU thread. A "step" is everything one
optimiser step needs:

- GRPO: 2 prompts x 4 completions (TRL: per_device_train_batch_size=8, num_generations=4), at most 8 new
  tokens, temperature 1, reference-model log-probs, beta 0.04, the loss, backward, Adam step.
- DPO: 8 preference pairs, reference log-probs precomputed before training in both (TRL:
  precompute_ref_log_probs=True), concatenated chosen+rejected forward, sigmoid loss, backward, Adam step.

TRL's steps are timed inside ``trainer.train()`` by a callback (from ``on_step_begin`` to
``on_step_end``), ours around :func:`rlcourse.grpo.grpo_step` / :func:`rlcourse.dpo.dpo_step`. The first
``--warmup`` steps of each are dropped; the median of the rest is reported. Prints the ratio
rlcourse / TRL (target <= 0.5x). Nothing is downloaded: TRL gets the course tokenizer and a local model
folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")


def _model_and_tokenizer(name: str):
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import data_dir, load_model, tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    if name == "tiny":  # the reference size: a ~109k-parameter GPT-2 (2 blocks of width 64)
        tok = build_tokenizer()
        torch.manual_seed(0)
        return GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_layer=2)), tok, "random 2-block GPT-2 ('tiny')"
    if (data_dir() / name).exists():
        model, tok = load_model(name)
        return model, tok, f"shipped '{name}' model"
    tok = build_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_gpt2_config(len(tok)))
    return model, tok, "random GPT-2 (tiny_gpt2_config; data/ not built)"


class _StepTimer:
    """A transformers TrainerCallback that records the wall time of every optimiser step."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer.t0)

        self.times: list[float] = []
        self.callback = CB()


def _median(times: list[float], warmup: int) -> float:
    return statistics.median(times[warmup:])


# what both TRL trainers are given besides their own settings: CPU, no logging, saving or progress bars
TRL_QUIET = dict(
    use_cpu=True, report_to="none", save_strategy="no", logging_steps=10**6, disable_tqdm=True, seed=0
)


def _time_trl(trainer_cls, warmup: int, **kwargs) -> float:
    """Train a TRL trainer with a step timer; return its median step time in seconds."""
    timer = _StepTimer()
    trainer = trainer_cls(callbacks=[timer.callback], **kwargs)
    with contextlib.redirect_stdout(io.StringIO()):  # TRL prints its metrics dict
        trainer.train()
    return _median(timer.times, warmup)


def bench_grpo(model, tok, folder: str, steps: int, warmup: int) -> tuple[float, float]:
    from datasets import Dataset
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import GRPOTrainer

    from rlcourse.grpo import GRPOConfig, grpo_step, make_adam
    from rlcourse.lm.model import frozen_copy
    from rlcourse.lm.tasks import ArithmeticTask

    task = ArithmeticTask()
    prompts = task.train_prompts[:64]

    def reward(prompts, completions, **kw):
        return [task.score(p, c, True) for p, c in zip(prompts, completions, strict=True)]

    args = TRLGRPOConfig(
        output_dir=os.path.join(folder, "grpo"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        temperature=1.0,
        beta=0.04,
        learning_rate=3e-4,
        max_steps=steps + warmup,
        **TRL_QUIET,
    )
    trl_s = _time_trl(
        GRPOTrainer,
        warmup,
        model=folder,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
    )

    policy = model
    ref = frozen_copy(policy)
    cfg = GRPOConfig(group_size=4, max_new_tokens=8, temperature=1.0, beta=0.04, lr=3e-4)
    opt = make_adam(policy.parameters(), cfg.lr, torch.device("cpu"))
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    policy.eval()  # dropout off, as TRL's disable_dropout=True
    ours = []
    for _ in range(steps + warmup):
        batch = [prompts[i] for i in rng.integers(0, len(prompts), 2)]
        t0 = time.perf_counter()
        grpo_step(policy, ref, tok, opt, batch, task.rewards, cfg, gen)
        ours.append(time.perf_counter() - t0)
    return _median(ours, warmup), trl_s


def bench_dpo(model, tok, folder: str, steps: int, warmup: int) -> tuple[float, float]:
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from rlcourse.dpo import DPOConfig, dpo_step, pair_batch, pair_logps, trim_padding
    from rlcourse.grpo import make_adam
    from rlcourse.lm.model import frozen_copy
    from rlcourse.lm.tasks import ArithmeticTask

    task = ArithmeticTask()
    rng = np.random.default_rng(0)
    pairs = []
    for p in task.train_prompts[:256]:
        right = task.answer(p)
        pairs.append({"prompt": p, "chosen": right, "rejected": str(int(right) + int(rng.integers(1, 10)))})
    args = TRLDPOConfig(
        output_dir=os.path.join(folder, "dpo"),
        per_device_train_batch_size=8,
        beta=0.1,
        learning_rate=1e-4,
        max_steps=steps + warmup,
        precompute_ref_log_probs=True,
        **TRL_QUIET,
        dataset_num_proc=None,
    )
    trl_s = _time_trl(
        DPOTrainer,
        warmup,
        model=folder,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_list([{k: d[k] for k in ("prompt", "chosen", "rejected")} for d in pairs]),
    )

    policy = model
    ref = frozen_copy(policy)
    cfg = DPOConfig(batch_size=8, beta=0.1, lr=1e-4)
    opt = make_adam(policy.parameters(), cfg.lr, torch.device("cpu"))
    ids, attn, comp = pair_batch(tok, pairs)
    n = len(pairs)
    with torch.no_grad():
        ref_all = pair_logps(ref, ids, attn, comp)[1]
    policy.eval()  # dropout off, as TRL's disable_dropout=True
    ours = []
    for _ in range(steps + warmup):
        idx = torch.as_tensor(rng.integers(0, n, cfg.batch_size))
        rows = torch.cat([idx, idx + n])
        t0 = time.perf_counter()
        dpo_step(policy, opt, trim_padding((ids[rows], attn[rows], comp[rows])), ref_all[rows], cfg)
        ours.append(time.perf_counter() - t0)
    return _median(ours, warmup), trl_s


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument(
        "--model",
        default="tiny",
        help="'tiny' (a random 111k GPT-2, the issue's reference size) or a shipped model name",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    import datasets
    import transformers
    import trl

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()

    model, tok, what = _model_and_tokenizer(args.model)
    from rlcourse.lm.model import count_parameters

    print(
        f"model: {what}, {count_parameters(model):,} parameters | torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}, 1 CPU thread"
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        for name, fn in (("GRPO step", bench_grpo), ("DPO step", bench_dpo)):
            init = {k: v.detach().clone() for k, v in model.state_dict().items()}
            ours, theirs = fn(model, tok, folder, args.steps, args.warmup)
            model.load_state_dict(init)  # both trainers start from the same weights
            rows.append((name, ours, theirs))
    print(f"{'':10s} {'rlcourse':>10s} {'TRL':>10s} {'ratio':>7s}")
    for name, ours, theirs in rows:
        print(f"{name:10s} {ours * 1e3:8.1f} ms {theirs * 1e3:8.1f} ms {ours / theirs:6.2f}x")
    print("(median over timed steps; ratio = rlcourse / TRL, target <= 0.5x; timings vary with machine load)")


if __name__ == "__main__":
    main()
