"""Device choice (chapter 00): CUDA, then Apple's MPS, then the CPU; one line for notebooks to print.

Every chapter calls :func:`get_device` once and moves its models and tensors there, so the same
notebook runs unchanged on a laptop CPU and on a GPU.

CPU threads. The course's models are tiny (a 4-64-2 MLP on CartPole, a 0.1-0.5M-parameter GPT-2
on the LM track). At that size torch's per-op threading overhead costs more than it gains. Measured
on the course's reference machine (2-core x86-64 CPU, torch 2.13.0) with ``benchmarks/threads.py``:
one training step (forward + backward + Adam) of a 100k-parameter GPT-2 on a batch of 16 x 32
tokens took 10.0 ms with 1
thread and 8.9 ms with 2 on an idle machine, but 9.0 ms with 1 thread and 24.1 ms with 2 (2.7x
slower) while another process kept one core busy -- the usual case on a laptop running JupyterLab
and a browser, and in ``make test``, which executes two notebooks at once. So :func:`get_device` sets ``torch.set_num_threads(1)`` on the CPU
unless ``RLCOURSE_THREADS`` says otherwise.
"""

from __future__ import annotations

import os
import platform

import torch

_VALID = ("cpu", "cuda", "mps")
DEFAULT_CPU_THREADS = 1


def _cpu_threads() -> int:
    raw = os.environ.get("RLCOURSE_THREADS")
    if raw is None:
        return DEFAULT_CPU_THREADS
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"RLCOURSE_THREADS must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"RLCOURSE_THREADS must be a positive integer, got {raw!r}")
    return n


def get_device(set_threads: bool = True) -> torch.device:
    """Return the device the course should use: cuda, then mps, then cpu.

    The environment variable ``RLCOURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides
    the choice; asking for a device this machine does not have raises a ``RuntimeError`` that says so.

    On the CPU, also sets torch's intra-op thread count to ``RLCOURSE_THREADS`` (default 1, see the
    module docstring for the measurement behind it) when ``set_threads`` is true.
    """
    wanted = os.environ.get("RLCOURSE_DEVICE", "").strip().lower()
    if wanted:
        kind = wanted.split(":")[0]
        if kind not in _VALID:
            raise ValueError(
                f"RLCOURSE_DEVICE={wanted!r} is not a device; use one of {', '.join(_VALID)} (e.g. 'cuda:0')"
            )
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"RLCOURSE_DEVICE={wanted!r} but torch sees no CUDA GPU (torch {torch.__version__}). "
                "Install a CUDA build of torch (see the README) or unset RLCOURSE_DEVICE."
            )
        if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RuntimeError(f"RLCOURSE_DEVICE={wanted!r} but MPS is not available on this machine.")
        device = torch.device(wanted)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if set_threads and device.type == "cpu":
        torch.set_num_threads(_cpu_threads())
    return device


def describe_device(device: torch.device | str | None = None) -> str:
    """One line for a notebook to print: device, its name, torch version and CPU threads."""
    device = torch.device(device) if device is not None else get_device(set_threads=False)
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(idx)
    elif device.type == "mps":
        name = "Apple GPU (MPS)"
    else:
        name = platform.processor() or platform.machine() or "CPU"
    return (
        f"device={device} ({name}) | torch {torch.__version__} | "
        f"CPU threads {torch.get_num_threads()} of {os.cpu_count()} cores"
    )
