"""The floor every chapter stands on: device, seeding, plotting, exercise checks and quizzes."""

import random

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from rlcourse.device import describe_device, get_device
from rlcourse.exercises import Case, check, compare
from rlcourse.plotting import plot_curves, smooth
from rlcourse.quiz import Question, show_quiz
from rlcourse.seeding import seed_everything

# ----- device ---------------------------------------------------------------------------------


def test_device_override_to_cpu_and_threads(monkeypatch):
    monkeypatch.setenv("RLCOURSE_DEVICE", "cpu")
    monkeypatch.setenv("RLCOURSE_THREADS", "1")
    before = torch.get_num_threads()
    try:
        assert get_device() == torch.device("cpu")
        assert torch.get_num_threads() == 1
        line = describe_device(torch.device("cpu"))
        assert "device=cpu" in line and f"torch {torch.__version__}" in line and "CPU threads 1" in line
    finally:
        torch.set_num_threads(before)


def test_device_default_threads_is_one(monkeypatch):
    monkeypatch.setenv("RLCOURSE_DEVICE", "cpu")
    monkeypatch.delenv("RLCOURSE_THREADS", raising=False)
    torch.set_num_threads(2)
    try:
        get_device()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_device_auto_choice_is_a_real_device(monkeypatch):
    monkeypatch.delenv("RLCOURSE_DEVICE", raising=False)
    d = get_device(set_threads=False)
    assert d.type in ("cpu", "cuda", "mps")
    assert d.type == "cuda" or not torch.cuda.is_available()
    torch.zeros(2, device=d)  # usable


@pytest.mark.parametrize(
    ("value", "err", "match"), [("tpu", ValueError, "not a device"), ("gpu", ValueError, "cpu, cuda, mps")]
)
def test_device_override_rejects_unknown_names(monkeypatch, value, err, match):
    monkeypatch.setenv("RLCOURSE_DEVICE", value)
    with pytest.raises(err, match=match):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_override_cuda_without_gpu_says_so(monkeypatch):
    monkeypatch.setenv("RLCOURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        get_device()


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_device_rejects_bad_thread_counts(monkeypatch, threads):
    monkeypatch.setenv("RLCOURSE_DEVICE", "cpu")
    monkeypatch.setenv("RLCOURSE_THREADS", threads)
    with pytest.raises(ValueError, match="RLCOURSE_THREADS"):
        get_device()


# ----- seeding --------------------------------------------------------------------------------


def _draw(seed):
    rng = seed_everything(seed)
    return random.random(), np.random.rand(), torch.rand(3).tolist(), rng.random()


def test_seed_everything_is_reproducible():
    assert _draw(123) == _draw(123)
    assert _draw(123) != _draw(124)
    assert isinstance(seed_everything(0), np.random.Generator)


@pytest.mark.parametrize("bad", [-1, 1.5, "7", True, None, 2**64])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        seed_everything(bad)


# ----- plotting -------------------------------------------------------------------------------


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(smooth([2.0, 4.0, 6.0, 8.0], 2), [2.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(smooth([1.0, 5.0], 1), [1.0, 5.0])
    np.testing.assert_allclose(smooth([1.0, 2.0, 3.0], 10), [1.0, 1.5, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        smooth(np.ones((2, 2)), 2)
    with pytest.raises(ValueError, match="window"):
        smooth([1.0], 0)


def test_plot_curves_mean_and_band():
    fig, ax = plt.subplots()
    plot_curves({"a": [np.zeros(10), np.ones(10) * 2]}, ax=ax, title="t")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.ones(10))
    assert len(ax.collections) == 1 and ax.get_title() == "t"
    ax2 = plot_curves(
        {"xy": [(np.arange(5), np.arange(5.0)), (np.arange(0, 10, 2), np.arange(5.0))]}, band="std"
    )
    assert ax2.get_xlabel() == "episode"
    plt.close("all")


@pytest.mark.parametrize(
    ("curves", "kwargs", "match"),
    [
        ({"a": [(np.arange(3), np.arange(4))]}, {}, "x has shape"),
        ({"a": []}, {}, "no runs"),
        ({"a": [np.ones(3)]}, {"band": "iqr"}, "band must be"),
    ],
)
def test_plot_curves_rejects_bad_input(curves, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_curves(curves, **kwargs)
    plt.close("all")


# ----- exercises.check ------------------------------------------------------------------------


def _square_cases():
    return [Case("two squared", (2.0,), expected=4.0), Case("minus three squared", (-3.0,), expected=9.0)]


def test_check_passes(monkeypatch, capsys):
    monkeypatch.setenv("RLCOURSE_STRICT_CHECKS", "1")
    res = check("square", lambda x: x * x, _square_cases())
    assert res and res.status == "passed" and "all 2 cases passed" in capsys.readouterr().out


def test_check_failure_names_the_case_expected_and_got(monkeypatch, capsys):
    monkeypatch.delenv("RLCOURSE_STRICT_CHECKS", raising=False)
    res = check("square", lambda x: x * 2, _square_cases(), hint="multiply x by itself")
    out = capsys.readouterr().out
    assert not res and res.status == "failed"
    assert "minus three squared" in out and "expected 9" in out and "got -6" in out and "hint" in out


def test_check_reports_exceptions_and_not_done(monkeypatch):
    monkeypatch.delenv("RLCOURSE_STRICT_CHECKS", raising=False)
    res = check("square", lambda x: x / 0, _square_cases())
    assert res.status == "failed" and "two squared" in res.message and "ZeroDivisionError" in res.message

    def todo(x):
        raise NotImplementedError()

    res = check("square", todo, _square_cases())
    assert res.status == "not done" and "not done yet" in res.message


def test_check_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("RLCOURSE_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError, match="minus three squared"):
        check("square", lambda x: x * abs(x), _square_cases())
    monkeypatch.setenv("RLCOURSE_STRICT_CHECKS", "0")
    assert not check("square", lambda x: x * abs(x), _square_cases())


def test_compare_shapes_and_callables():
    assert compare(np.ones(3), [1.0, 1.0, 1.0]) is None
    assert "shape" in compare(np.ones(2), [1.0, 1.0, 1.0])
    assert compare(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0])) is None
    assert compare("x", lambda got: None if got == "x" else "bad") is None
    assert compare("y", "x") == "expected 'x', got 'y'"


# ----- quiz -----------------------------------------------------------------------------------


def test_question_validation():
    with pytest.raises(ValueError, match="two options"):
        Question("q", ["only"], 0, ["e"])
    with pytest.raises(ValueError, match="explanations"):
        Question("q", ["a", "b"], 0, ["e"])
    with pytest.raises(ValueError, match="not an option"):
        Question("q", ["a", "b"], 2, ["e", "f"])
    with pytest.raises(ValueError, match="at least one question"):
        show_quiz([])


def test_quiz_feedback_and_text_mode(monkeypatch, capsys):
    q = Question("What does gamma do?", ["discounts", "explores"], 0, ["yes, later rewards count less", "no"])
    assert q.feedback(0).startswith("✓") and q.feedback(1).startswith("✗")
    monkeypatch.setenv("RLCOURSE_QUIZ_TEXT", "1")
    show_quiz([q])
    out = capsys.readouterr().out
    assert "What does gamma do?" in out and "* a) discounts" in out
