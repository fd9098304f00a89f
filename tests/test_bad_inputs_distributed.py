"""Bad input to the data-parallel code and its command lines raises a clear error (chapter 12)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from rlcourse import distributed
from rlcourse.dpo.__main__ import main as dpo_main
from rlcourse.grpo import GRPOConfig, train_grpo
from rlcourse.grpo.__main__ import main as grpo_main
from rlcourse.lm import ArithmeticTask, load_model


def _exits_with(capsys, fn, argv, *needles):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def test_cli_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "f.txt"
    f.write_text("x")
    _exits_with(capsys, grpo_main, ["--out", str(f)], "is a file")


def test_cli_out_holds_foreign_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    _exits_with(capsys, dpo_main, ["--out", str(tmp_path)], "not a previous run", "new (or empty) folder")


def test_cli_bad_config_values(tmp_path, capsys):
    _exits_with(
        capsys, grpo_main, ["--prompts-per-step", "0", "--out", str(tmp_path / "a")], "prompts_per_step"
    )
    _exits_with(capsys, dpo_main, ["--batch-size", "0", "--out", str(tmp_path / "b")], "batch_size")
    _exits_with(
        capsys, dpo_main, ["--pairs", "0", "--out", str(tmp_path / "c")], "--pairs must be at least 1"
    )
    _exits_with(capsys, grpo_main, ["--loss-type", "ppo", "--out", str(tmp_path / "d")], "--loss-type")


def test_init_from_env_bad_threads_and_backend():
    threads = torch.get_num_threads()
    try:
        with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
            distributed.init_from_env(threads=0)
        with pytest.raises(ValueError, match="backend must be 'gloo'.*got 'mpi'"):
            distributed.init_from_env("mpi", threads=1)
    finally:
        torch.set_num_threads(threads)
    assert not distributed.is_active()


def test_dynamic_sampling_refused_under_a_process_group(tmp_path):
    policy, tok = load_model("arithmetic")
    cfg = GRPOConfig(steps=1, prompts_per_step=2, group_size=2, dynamic_sampling=True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="dynamic_sampling=True cannot run data-parallel"):
            train_grpo(policy, tok, ArithmeticTask(), cfg)
    finally:
        dist.destroy_process_group()
