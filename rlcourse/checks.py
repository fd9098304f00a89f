"""Shared guards: one wording for every bad input, no silent NaN, no lost work, atomic saves.

Every module of ``rlcourse`` checks its inputs with these helpers, so a learner's mistake always
gets the same kind of message: *which argument, what value, what is allowed, how to fix it*.

- Config fields: :func:`check_number`, :func:`check_int`, :func:`check_choice` (call them in a
  config's ``__post_init__``, so a bad config fails when it is built, not after training started).
- Tensors: :func:`check_finite` (names the tensor and the first bad index), :func:`check_float`,
  :func:`check_binary`.
- Training loops: :func:`call_user` wraps a user's function (a reward function, a callback) so its
  failure names it; :class:`TrainingError` carries the history of the completed steps to the caller;
  :func:`interrupted` is what a trainer says when Ctrl-C stops it (it then returns what it has).
- Saving: :func:`atomic_dir` writes a folder beside its target and renames it into place;
  :func:`json_ready` converts metadata to JSON types (or refuses it) before a single file is written.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

# ----- numbers and choices ---------------------------------------------------------------------------


def _where(owner: str | None, name: str) -> str:
    return f"{owner}.{name}" if owner else name


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    owner: str | None = None,
    fix: str = "",
) -> float:
    """Return ``float(value)`` if it is a finite real number in the range, else raise ``ValueError``.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``. ``owner`` (e.g. ``"PPOConfig"``)
    and ``fix`` (e.g. ``"use 0.2, the paper's value"``) go into the message.
    """
    where = _where(owner, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_scalar_tensor(value):
        raise TypeError(f"{where} must be a number, got {value!r} ({type(value).__name__}){_fix(fix)}")
    x = float(value)
    lo_ok = low is None or (x > low if low_open else x >= low)
    hi_ok = high is None or (x < high if high_open else x <= high)
    if not math.isfinite(x) or not (lo_ok and hi_ok):
        raise ValueError(
            f"{where} must be {_range_text(low, high, low_open, high_open)}, got {value!r}{_fix(fix)}"
        )
    return x


def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    owner: str | None = None,
    fix: str = "",
) -> int:
    """Return ``value`` if it is an integer (not a bool, not a float) in ``[low, high]``, else raise."""
    where = _where(owner, name)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)  # numpy integers (np.int64(25)) are integers too
    if isinstance(value, bool) or not isinstance(value, int):
        hint = (
            f"; did you mean {int(value)}?" if isinstance(value, float) and float(value).is_integer() else ""
        )
        raise TypeError(
            f"{where} must be an integer, got {value!r} ({type(value).__name__}){hint}{_fix(fix)}"
        )
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where} must be {_range_text(low, high, False, False)}, got {value!r}{_fix(fix)}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any], *, owner: str | None = None) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{_where(owner, name)} must be one of {options}; got {value!r}")
    return value


def _is_scalar_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point()


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return "a finite number"


def _fix(fix: str) -> str:
    return f". Fix: {fix}" if fix else ""


# ----- tensors ---------------------------------------------------------------------------------------


def check_float(name: str, x: torch.Tensor) -> torch.Tensor:
    """Refuse a tensor that is not floating point (an int reward would truncate a discounted return)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it with {name}.float() (integer arithmetic would truncate the results)"
        )
    return x


def check_finite(name: str, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` and the first NaN/inf index (only where ``mask`` is set)."""
    bad = ~torch.isfinite(x.detach())
    if mask is not None:
        bad = bad & mask.to(torch.bool)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        value = x.detach()[index].item()
        index_text = index[0] if len(index) == 1 else index
        raise ValueError(
            f"{name} contains a non-finite value ({value}) at index {index_text}; "
            "find where it comes from (a reward function returning NaN, a division by zero, a diverged model)"
        )
    return x


def check_binary(name: str, x: torch.Tensor) -> torch.Tensor:
    """Refuse a done flag / mask tensor with values other than 0 and 1."""
    ok = (x == 0) | (x == 1)
    if not bool(ok.all()):
        index = tuple(int(i) for i in (~ok).nonzero()[0])
        index_text = index[0] if len(index) == 1 else index
        raise ValueError(
            f"{name} must hold only 0 and 1 (or False/True), got {x[index].item()} at index {index_text}"
        )
    return x


# ----- training loops --------------------------------------------------------------------------------


class UserFunctionError(RuntimeError):
    """A function the user passed in (reward function, callback, ...) raised; the cause is chained."""


def call_user(fn: Callable[..., Any], role: str, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; if it raises, re-raise as :class:`UserFunctionError` naming ``role``."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise UserFunctionError(f"your {role} {name!r} raised {type(e).__name__}: {e}") from e


class TrainingError(RuntimeError):
    """A trainer stopped with an error; ``.history`` holds what the completed steps logged.

    Attributes: ``trainer`` (its name), ``step`` (the step that failed, 0-based), ``history``.
    """

    def __init__(self, trainer: str, step: int, history: Any, cause: BaseException) -> None:
        self.trainer, self.step, self.history = trainer, step, history
        super().__init__(
            f"{trainer} stopped at step {step} ({step} completed steps are kept in this error's "
            f".history): {type(cause).__name__}: {cause}"
        )


def interrupted(trainer: str, step: int) -> None:
    """Say (once, on stderr-free stdout) that Ctrl-C stopped ``trainer``; the trainer then returns."""
    print(f"{trainer}: interrupted at step {step}; returning the {step} completed steps.")


# ----- saving ----------------------------------------------------------------------------------------


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh folder beside ``target``; on success it replaces ``target`` in one rename.

    If anything raises inside the ``with`` block, the temporary folder is removed and ``target`` is
    left exactly as it was (still loadable). Usage::

        with atomic_dir(folder) as tmp:
            save_file(tensors, tmp / "model.safetensors")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def json_ready(obj: Any, name: str = "metadata") -> Any:
    """Return ``obj`` with numpy/torch scalars, tuples and paths converted to JSON types.

    Raises ``TypeError`` naming the key path of the first value that has no JSON form, before
    anything is written.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{name} is {obj}, which JSON cannot store; replace it with None or a number")
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return json_ready(obj.item(), name)
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():  # numpy scalar
        return json_ready(obj.item(), name)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"{name} has a key {k!r} of type {type(k).__name__}; JSON keys must be strings"
                )
            out[k] = json_ready(v, f"{name}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, f"{name}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"{name} is a {type(obj).__name__} ({obj!r:.60}), which has no JSON form; "
        "convert it to a number, string, list or dict first"
    )


def dumps(obj: Any, name: str = "metadata") -> str:
    """``json.dumps(json_ready(obj))`` with indentation: check first, then serialise."""
    return json.dumps(json_ready(obj, name), indent=2, ensure_ascii=False)
