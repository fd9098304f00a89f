"""rlcourse.checks: the shared guards every module uses (messages, NaN, lost work, atomic saves)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rlcourse import checks


def test_check_number_accepts_and_converts():
    assert checks.check_number("gamma", 1, low=0, high=1) == 1.0
    assert checks.check_number("lr", torch.tensor(0.1), low=0, low_open=True) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("value", "kwargs", "exc", "fragment"),
    [
        (1.5, dict(low=0, high=1), ValueError, "in [0, 1], got 1.5"),
        (0.0, dict(low=0, low_open=True), ValueError, "> 0, got 0.0"),
        (math.nan, dict(low=0), ValueError, "got nan"),
        ("0.1", dict(low=0), TypeError, "must be a number, got '0.1'"),
        (True, dict(low=0), TypeError, "must be a number"),
    ],
)
def test_check_number_refuses(value, kwargs, exc, fragment):
    with pytest.raises(exc, match="PPOConfig.gamma") as e:
        checks.check_number("gamma", value, owner="PPOConfig", fix="use 0.99", **kwargs)
    assert fragment in str(e.value)
    assert "Fix: use 0.99" in str(e.value)


def test_check_int():
    assert checks.check_int("steps", 3, low=1) == 3
    assert checks.check_int("steps", np.int64(3), low=1) == 3 and type(checks.check_int("n", np.int64(3))) is int
    with pytest.raises(TypeError, match=r"steps must be an integer, got 3.0 .*did you mean 3"):
        checks.check_int("steps", 3.0, low=1)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        checks.check_int("steps", 0, low=1)
    with pytest.raises(TypeError, match="steps"):
        checks.check_int("steps", True)


def test_check_choice():
    assert checks.check_choice("kind", "k3", ["k1", "k2", "k3"]) == "k3"
    with pytest.raises(ValueError, match="kind must be one of 'k1', 'k2'; got 'k4'"):
        checks.check_choice("kind", "k4", ["k1", "k2"])


def test_check_finite_names_tensor_and_first_index():
    x = torch.tensor([[0.0, 1.0], [math.inf, math.nan]])
    with pytest.raises(ValueError, match=r"rewards contains a non-finite value \(inf\) at index \(1, 0\)"):
        checks.check_finite("rewards", x)
    mask = torch.tensor([[1, 1], [0, 0]])
    assert checks.check_finite("rewards", x, mask=mask) is x  # masked-out positions are ignored


def test_check_float_and_binary():
    with pytest.raises(TypeError, match=r"rewards must be a floating-point tensor, got dtype torch.int64"):
        checks.check_float("rewards", torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="dones must hold only 0 and 1.*got 2.0 at index 1"):
        checks.check_binary("dones", torch.tensor([0.0, 2.0]))
    checks.check_binary("dones", torch.tensor([True, False]))


def test_call_user_names_the_function():
    def my_reward(x):
        raise KeyError("oops")

    with pytest.raises(
        checks.UserFunctionError, match="your reward function 'test_call_user.*my_reward' raised"
    ):
        checks.call_user(my_reward, "reward function", 1)


def test_training_error_keeps_history():
    err = checks.TrainingError("train_x", 3, {"loss": [1, 2, 3]}, ValueError("bad"))
    assert err.history == {"loss": [1, 2, 3]} and err.step == 3
    assert "train_x stopped at step 3" in str(err) and "ValueError: bad" in str(err)


def test_atomic_dir_replaces_or_keeps(tmp_path: Path):
    target = tmp_path / "model"
    with checks.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    assert (target / "a.txt").read_text() == "v1"
    with pytest.raises(RuntimeError), checks.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v2")
        raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "v1"  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind
    with checks.atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


def test_json_ready():
    meta = {"lr": np.float32(0.5), "steps": torch.tensor(3), "shape": (1, 2), "path": Path("x")}
    assert json.loads(checks.dumps(meta)) == {"lr": 0.5, "steps": 3, "shape": [1, 2], "path": "x"}
    with pytest.raises(TypeError, match=r"metadata\['fn'\] is a function"):
        checks.json_ready({"fn": lambda: 0})
    with pytest.raises(ValueError, match=r"metadata\['x'\] is nan"):
        checks.json_ready({"x": float("nan")})
