"""Chapter 12's bridge to TRL and ``recipes/grpo_trl.py``: the config map, the reward adapter, the recipe run.

The recipe runs a few steps on the shipped tiny model in 1 process and under ``torchrun`` with 2 gloo ranks
(each launch has a hard timeout; ``--standalone`` picks a free port, so xdist workers do not collide).
Skipped with a message when trl is not importable (a dev dependency).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

trl = pytest.importorskip("trl", reason="trl is not installed: `pip install -e .[dev]` to test the recipes")

from rlcourse.dpo import DPOConfig  # noqa: E402
from rlcourse.grpo import GRPOConfig  # noqa: E402
from rlcourse.lm import ArithmeticTask  # noqa: E402
from rlcourse.trl_bridge import (  # noqa: E402
    DPO_FIELDS,
    GRPO_FIELDS,
    course_reward,
    trl_dpo_config,
    trl_grpo_config,
    trl_history,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "grpo_trl.py"
TIMEOUT_S = 240


def test_every_mapped_field_exists_and_follows_our_config(tmp_path):
    cfg = GRPOConfig(
        steps=7, prompts_per_step=3, group_size=4, max_new_tokens=6, lr=2e-4, beta=0.02, clip_eps=0.1,
        loss_type="dr_grpo", scale_rewards=False, num_iterations=2, seed=5,
    )  # fmt: skip
    args = trl_grpo_config(cfg, tmp_path)
    for field, _, _ in GRPO_FIELDS:
        assert hasattr(args, field), f"trl.GRPOConfig has no field {field!r}"
    assert (args.max_steps, args.per_device_train_batch_size, args.num_generations) == (7, 12, 4)
    assert (args.max_completion_length, args.learning_rate, args.beta, args.epsilon) == (6, 2e-4, 0.02, 0.1)
    assert args.epsilon_high is None  # TRL reads None as "= epsilon", as our clip_eps_high=None
    assert (args.loss_type, args.scale_rewards, args.num_iterations) == ("dr_grpo", "none", 2)
    assert args.seed == 5 and not args.use_bias_correction_kl and not args.bf16
    assert args.lr_scheduler_type == "constant" and args.weight_decay == 0.0

    dcfg = DPOConfig(steps=3, batch_size=5, lr=3e-5, beta=0.2, loss_type="ipo", nll_weight=0.5, seed=2)
    dargs = trl_dpo_config(dcfg, tmp_path)
    for field, _, _ in DPO_FIELDS:
        assert hasattr(dargs, field), f"trl.DPOConfig has no field {field!r}"
    assert (dargs.max_steps, dargs.per_device_train_batch_size) == (3, 5)
    assert (dargs.learning_rate, dargs.beta) == (3e-5, 0.2)
    assert dargs.loss_type == ["ipo", "sft"] and dargs.loss_weights == [1.0, 0.5]
    assert dargs.precompute_ref_log_probs and not dargs.bf16


def test_bridge_rejects_what_trl_cannot_express(tmp_path):
    with pytest.raises(ValueError, match="world_size=3 must divide prompts_per_step \\* group_size = 32"):
        trl_grpo_config(GRPOConfig(prompts_per_step=4, group_size=8), tmp_path, world_size=3)
    with pytest.raises(ValueError, match="dynamic_sampling"):
        trl_grpo_config(GRPOConfig(dynamic_sampling=True), tmp_path)
    with pytest.raises(ValueError, match="warmup_steps=3 has no exact TRL equivalent"):
        trl_grpo_config(GRPOConfig(warmup_steps=3), tmp_path)
    with pytest.raises(TypeError, match="rlcourse.grpo.GRPOConfig"):
        trl_grpo_config(DPOConfig(), tmp_path)
    with pytest.raises(ValueError, match="eos_token_ids is empty"):
        course_reward(ArithmeticTask(), [])


def test_course_reward_is_the_task_score_in_trl_form():
    task, eos = ArithmeticTask(), 2
    reward = course_reward(task, [eos])
    got = reward(
        prompts=["2+3=", "2+3=", "2+3=", "10+5="],
        completions=["5", "5", "x", "16"],
        completion_ids=[[9, eos], [9, 9], [7, eos], [5, 10, eos]],  # the 2nd did not end: unfinished
        problem=["2+3=", "2+3=", "2+3=", "10+5="],
    )
    assert got == [task.score("2+3=", "5", True), 0.0, 0.0, task.score("10+5=", "16", True)]
    assert got[0] == pytest.approx(1.1) and got[3] == pytest.approx(0.1)
    chat = course_reward(task, [eos], strip=True)
    assert chat(
        completions=[[{"role": "assistant", "content": " 5\n"}]], completion_ids=[[9, eos]], problem=["2+3="]
    ) == [pytest.approx(1.1)]


def test_trl_history_reads_the_log():
    log = [
        {"loss": 0.5, "reward": 0.2, "step": 1},
        {"loss": 0.4, "step": 2},
        {"train_runtime": 3.0, "step": 2},
    ]
    h = trl_history(log, {"loss": "loss", "reward": "reward"}, [0.1, 0.2])
    assert h["step"] == [1, 2] and h["loss"] == [0.5, 0.4] and h["step_time"] == [0.1, 0.2]
    assert h["reward"][0] == 0.2 and h["reward"][1] != h["reward"][1]  # NaN where the step lacks the key


def _run(cmd: list[str]) -> str:
    """Run ``cmd`` from the repository; kill it and every process it started after TIMEOUT_S. Returns stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its ranks: none outlives the test
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} still ran after {TIMEOUT_S} s:\n{out[-2000:]}\n{err[-4000:]}")
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited with {proc.returncode}:\n{out[-2000:]}\n{err[-4000:]}"
    )
    return out


def _check_summary(out: Path, world_size: int, steps: int) -> dict:
    summary = json.loads((out / "trl_history.json").read_text())
    h = summary["history"]
    assert summary["world_size"] == world_size
    assert h["step"] == list(range(1, steps + 1)) and len(h["step_time"]) == steps
    assert all(torch.isfinite(torch.tensor(h[k])).all() for k in ("reward", "loss", "kl", "step_time"))
    assert all(0.0 <= r <= 1.1 for r in h["reward"])  # the course reward: 0, 0.1, 1.0 or 1.1 per answer
    assert summary["weights"]["identical"] and len(summary["weights"]["sha256"]) == world_size
    return summary


def test_recipe_runs_on_the_tiny_model(tmp_path):
    args = ["--model", "arithmetic", "--steps", "2", "--prompts-per-step", "4", "--group-size", "4"]
    out = _run(
        [sys.executable, str(RECIPE), *args, "--threads", "1", "--save", "--output-dir", str(tmp_path)]
    )
    assert "TRL GRPO on 1 process(es)" in out
    summary = _check_summary(tmp_path, world_size=1, steps=2)
    assert summary["distributed_type"] == "DistributedType.NO"
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_recipe_runs_on_two_gloo_ranks(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = ["--model", "arithmetic", "--steps", "2", "--prompts-per-step", "4", "--group-size", "4"]
    watchdog = ["--watchdog-s", str(TIMEOUT_S - 30)]  # a hung rank prints its stack and exits
    _run([*torchrun, str(RECIPE), *args, "--threads", "1", *watchdog, "--output-dir", str(tmp_path)])
    summary = _check_summary(tmp_path, world_size=2, steps=2)
    assert summary["distributed_type"] == "DistributedType.MULTI_CPU"


def test_recipe_help_lists_the_gpu_flags():
    out = _run([sys.executable, str(RECIPE), "--help"])
    for flag in ("--model", "--use-vllm", "--bf16", "--gradient-checkpointing", "--chat", "--output-dir"):
        assert flag in out


def test_trl_ready_scores_left_padded_rows_at_mask_positions_without_warning():
    """TRL's GRPO scores with model(input_ids, attention_mask) and no position_ids (trl #6800); after
    trl_ready that equals the course's log-probs on a left-padded batch, and the deprecated alias TRL reads
    no longer warns (checked with every warning an error)."""
    import warnings

    from rlcourse.lm import load_model
    from rlcourse.lm.logprobs import logprobs_from_logits, token_logprobs
    from rlcourse.lm.tokenizer import encode_prompts
    from rlcourse.trl_bridge import trl_ready

    model, tok = load_model("arithmetic")
    ids, att = encode_prompts(tok, ["5+3=", "45+67="])  # the first row is left-padded

    def blind() -> torch.Tensor:
        return logprobs_from_logits(model(input_ids=ids, attention_mask=att).logits, ids, 1.0)

    with torch.no_grad():
        before = (blind() - token_logprobs(model, ids, att)).abs()
        trl_ready(model)
        after = (blind() - token_logprobs(model, ids, att)).abs()
    assert before[0].max() > 1e-2 and before[1].max() < 1e-6  # only the padded row was scored elsewhere
    assert after.max() < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.is_gradient_checkpointing is False


GENERATE_UNPADDED = """
import torch
from rlcourse.lm import load_model
from rlcourse.trl_bridge.trainers import trl_ready
model, tok = load_model("arithmetic")
plain = model.generate(**tok(["1+2="] * 32, return_tensors="pt"), do_sample=False, max_new_tokens=5,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
trl_ready(model)
torch.manual_seed(4)
out = model.generate(**tok(["1+2="] * 32, return_tensors="pt"), do_sample=True, max_new_tokens=5,
                     pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
assert (out == tok.pad_token_id).any(), "no row finished early: the case is not exercised"
ready = model.generate(**tok(["1+2="] * 32, return_tensors="pt"), do_sample=False, max_new_tokens=5,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
assert torch.equal(plain, ready), "the restored mask changed what greedy decoding produces"
"""


def test_generate_without_padding_gives_no_missing_mask_warning():
    """transformers drops an all-ones mask; finished rows then feed <pad> (seed 4 of chapter 12 warned)."""
    r = subprocess.run(
        [sys.executable, "-c", GENERATE_UNPADDED], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "attention_mask" not in r.stderr, r.stderr[-2000:]


WHO_AM_I = """
from accelerate import PartialState
s = PartialState(cpu=True)  # what TRL's trainers build on a CPU-only machine (use_cpu=True)
print(f"rank {s.process_index} of {s.num_processes} {s.distributed_type.value}", flush=True)
"""


@pytest.mark.parametrize(
    "launch, ranks",
    [
        (
            ["--config_file", "recipes/accelerate/cpu_2proc.yaml"],
            {"rank 0 of 2 MULTI_CPU", "rank 1 of 2 MULTI_CPU"},
        ),
        (["--cpu", "--num_processes", "2"], {"rank 0 of 1 NO"}),  # accelerate issue #2741: ONE process
    ],
    ids=["cpu_2proc.yaml gives 2 ranks", "--cpu --num_processes 2 gives 1"],
)
def test_accelerate_launchers_on_a_cpu_only_machine(tmp_path, launch, ranks):
    if torch.cuda.is_available():
        pytest.skip("the trap is about CPU-only machines")
    script = tmp_path / "who.py"
    script.write_text(WHO_AM_I)
    accelerate = Path(sys.executable).with_name("accelerate")
    r = subprocess.run(
        [str(accelerate), "launch", *launch, str(script)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(re.findall(r"rank \d+ of \d+ [A-Z_]+", r.stdout)) == ranks, (
        r.stdout
    )  # ranks' lines may interleave
