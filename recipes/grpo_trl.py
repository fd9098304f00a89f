"""The course's GRPO (chapter 08) with TRL's GRPOTrainer, on any causal LM, on 1 CPU or many GPUs (chapter 12).

The task and the reward are the course's: ``rlcourse.lm.ArithmeticTask`` prompts ``"a+b="`` and its
rule-based reward (1.0 for the right sum, 0.1 for a well-formed number, both only when the answer ends).
The settings are an ``rlcourse.grpo.GRPOConfig`` mapped to TRL's by ``rlcourse.trl_bridge`` (the table is in
chapter 12). Only ``--model`` and the hardware flags change between the tested run here and a GPU run::

    # here: the shipped tiny model, 1 process, CPU (tests/test_recipes.py runs this)
    python recipes/grpo_trl.py --model arithmetic --steps 4 --output-dir runs/trl
    # 2 processes (gloo on the CPU, NCCL on GPUs)
    torchrun --standalone --nproc_per_node 2 recipes/grpo_trl.py --model arithmetic --steps 4 --output-dir runs/trl2
    # a real instruct model on 1 GPU, generation with vLLM in the training process
    python recipes/grpo_trl.py --model Qwen/Qwen2.5-0.5B-Instruct --chat --bf16 --use-vllm \\
        --steps 200 --prompts-per-step 16 --group-size 8 --max-new-tokens 16 --output-dir runs/qwen
    # 8 GPUs with DeepSpeed ZeRO-2 (see recipes/README.md for ZeRO-3 and several machines)
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/grpo_trl.py \\
        --model Qwen/Qwen2.5-0.5B-Instruct --chat --bf16 --steps 200 --prompts-per-step 64 --output-dir runs/qwen8

``--prompts-per-step`` is GLOBAL (all processes together): each of N processes generates
``prompts-per-step * group-size / N`` completions per step. Rank 0 writes ``OUTPUT_DIR/trl_history.json``
(per-step reward, loss, KL, step time; the number of processes; a digest of every rank's final weights).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import time
from pathlib import Path

SHIPPED = ("arithmetic",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="arithmetic", help="'arithmetic' (shipped), a model folder, or a hub id"
    )
    p.add_argument("--output-dir", required=True, help="where rank 0 writes trl_history.json (and --save)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prompts-per-step", type=int, default=8, help="GLOBAL prompts per step")
    p.add_argument("--group-size", type=int, default=4, help="G, completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--loss-type", default="grpo", help="grpo, bnpo, dr_grpo, dapo or cispo")
    p.add_argument("--num-iterations", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chat", action="store_true", help="ask through the model's chat template (instruct models)"
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPUs)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations: less memory")
    p.add_argument("--use-vllm", action="store_true", help="generate with vLLM (pip install trl[vllm]; GPUs)")
    p.add_argument(
        "--vllm-mode", default="colocate", help="'colocate' (in the training processes) or 'server'"
    )
    p.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=None, help="torch threads per process on the CPU")
    p.add_argument("--save", action="store_true", help="save the trained model to OUTPUT_DIR/model")
    p.add_argument(
        "--watchdog-s",
        type=float,
        default=0,
        help="if > 0: after this many seconds print every thread's stack and exit 1 (a hung rank never lingers)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.watchdog_s > 0:
        faulthandler.dump_traceback_later(args.watchdog_s, exit=True)
    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not torch.cuda.is_available():  # each rank its share of the cores (2 ranks on 2 cores: 1 thread each)
        from rlcourse.distributed import cpu_cores

        torch.set_num_threads(args.threads or max(1, cpu_cores() // world_size))

    from transformers import AutoTokenizer

    from rlcourse.distributed import is_active, teardown, weights_report
    from rlcourse.grpo import GRPOConfig
    from rlcourse.lm import ArithmeticTask
    from rlcourse.lm.files import data_dir
    from rlcourse.trl_bridge import make_grpo_trainer, trl_history

    model = str(data_dir() / args.model) if args.model in SHIPPED else args.model
    tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
    cfg = GRPOConfig(
        steps=args.steps,
        prompts_per_step=args.prompts_per_step,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        lr=args.lr,
        beta=args.beta,
        loss_type=args.loss_type,
        num_iterations=args.num_iterations,
        seed=args.seed,
        eval_every=0,
    )
    hardware = dict(bf16=args.bf16, activation_checkpointing=args.gradient_checkpointing)
    if args.use_vllm:
        hardware.update(
            use_vllm=True,
            vllm_mode=args.vllm_mode,
            vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization,
        )
    trainer, timer = make_grpo_trainer(
        model, tokenizer, ArithmeticTask(), cfg, args.output_dir, world_size, chat=args.chat, **hardware
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    summary = {
        "world_size": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "model": args.model,
        "seconds": seconds,
        "history": trl_history(
            trainer.state.log_history, {"reward": "reward", "loss": "loss", "kl": "kl"}, timer.times
        ),
        "weights": weights_report(trainer.model),
    }
    if args.save:
        trainer.save_model(str(Path(args.output_dir) / "model"))
    # Free the DDP-wrapped model (its gradient reducer holds the process group) while every rank is still in
    # step: left to interpreter exit, after the group is destroyed, a rank sometimes hung there (gloo, CPU).
    trainer.accelerator.free_memory()
    del trainer, timer
    gc.collect()
    if rank == 0:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "trl_history.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(out / "trl_history.json")
        h = summary["history"]
        print(
            f"TRL GRPO on {summary['world_size']} process(es): {len(h['step'])} steps in {seconds:.1f} s, "
            f"reward {h['reward'][0]:.3f} -> {h['reward'][-1]:.3f}, identical weights on every rank: "
            f"{summary['weights']['identical']}"
        )
    if is_active():
        torch.distributed.barrier()  # every rank has finished before the group goes
    teardown()  # some runs abort at exit when the process group is not destroyed
    return summary


if __name__ == "__main__":
    main()
