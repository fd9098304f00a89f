"""Data parallelism by hand: the few ``torch.distributed`` calls that train one model on many processes (chapter 12).

Every process (a *rank*) holds a full copy of the model. Each step, every rank takes its share of the
global batch (:func:`shard`), computes the gradient of its share of the loss, and the ranks add their
gradients up (:func:`all_reduce_grads`, one ``all_reduce`` per parameter: what PyTorch's
``DistributedDataParallel`` does in buckets, overlapped with the backward pass). Every rank then applies
the same clipped update to the same weights, so the copies never drift apart. Logged statistics are
reduced too (:func:`all_reduce_sum`, :func:`all_reduce_mean`), and rank 0 alone (:func:`is_main`)
evaluates, prints and saves.

Launch with ``torchrun``, which starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...::

    torchrun --standalone --nproc_per_node 2 -m rlcourse.grpo --steps 4 --out runs/grpo2

:func:`init_from_env` reads those variables (gloo backend on the CPU, NCCL on CUDA GPUs). Note that
``accelerate launch --cpu --num_processes 2`` starts only ONE process on a CPU-only machine (accelerate
issue #2741); ``torchrun`` gives two gloo ranks. Always end with :func:`teardown`: some runs abort at exit
when the process group is not destroyed.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def is_active() -> bool:
    """True when a process group is initialised (the trainers then run data-parallel)."""
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if not is_active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the rank that logs, evaluates and saves."""
    return world()[0] == 0


def cpu_cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or ``torch.distributed.run``) started this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_from_env(
    backend: str | None = None, threads: int | None = None, timeout_s: float = 300.0
) -> tuple[int, int]:
    """Join the process group described by torchrun's environment variables; return ``(rank, world_size)``.

    backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA); default gloo, or nccl when CUDA is available.
    threads: torch intra-op threads per rank; default ``RLCOURSE_THREADS`` or 1, the course's setting
    (:mod:`rlcourse.device`). Never give the ranks more threads in total than there are free cores: on this
    2-core machine, busy with other jobs, one rank with 2 threads took 19.6 s per GRPO step against 1.4 s with
    1 thread (threads spin-waiting for a core). timeout_s: how long a collective waits for a missing rank.
    Without torchrun's variables it initialises nothing and returns ``(0, 1)`` (a plain single process).
    """
    from rlcourse.device import _cpu_threads

    n_threads = threads if threads is not None else _cpu_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}; e.g. threads=1")
    if backend not in (None, "gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' (CPU), 'nccl' (CUDA) or None (pick), got {backend!r}")
    torch.set_num_threads(n_threads)
    if not launched_by_torchrun() or is_active():
        return world()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return world()


def teardown() -> None:
    """Destroy the process group if there is one (safe to call twice). Call it in a ``finally``."""
    if is_active():
        dist.destroy_process_group()


def shard(items: Sequence[T], rank: int, world_size: int, name: str = "items") -> list[T]:
    """Rank ``rank``'s contiguous block of ``items``: ``items[rank * n : (rank + 1) * n]``, ``n = len // world``.

    Every rank must see the same ``items`` (same seed), so the blocks cover the global batch exactly once.
    Raises ``ValueError`` naming ``name`` when ``len(items)`` is not divisible by ``world_size``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got rank={rank}")
    if len(items) % world_size:
        raise ValueError(
            f"{name}={len(items)} is not divisible by the number of ranks ({world_size}); every rank must get "
            f"the same share: use a multiple of {world_size}, e.g. {world_size * max(1, len(items) // world_size)}"
        )
    n = len(items) // world_size
    return list(items[rank * n : (rank + 1) * n])


def _comm_device() -> torch.device:
    """Where collectives want their tensors: the rank's GPU under NCCL, the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(x: float | torch.Tensor) -> float | torch.Tensor:
    """Sum of ``x`` over ranks: a float (summed in float64) or a tensor (a reduced copy). Identity alone."""
    if not is_active():
        return x
    t = x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=torch.float64)
    out = t.detach().to(_comm_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device) if isinstance(x, torch.Tensor) else out.item()


def all_reduce_mean(x: float | torch.Tensor) -> float | torch.Tensor:
    """Mean of ``x`` over ranks (the right global mean only when every rank averages the same count)."""
    _, world_size = world()
    return all_reduce_sum(x) / world_size


def weighted_means(values: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """Global weighted means of per-rank means in ONE all-reduce: ``sum_r w_r v_r / sum_r w_r`` per key.

    A rank's mean over its tokens (or rows, or groups) times their count, summed over ranks, divided by the
    total count, is the mean over the whole global batch. A value with weight 0 (e.g. NaN on a rank that
    has no tokens) counts as 0; a key whose total weight is 0 is NaN.
    """
    keys = list(values)
    w = [float(weights[k]) for k in keys]
    wv = [wi * v if wi > 0 else 0.0 for wi, v in zip(w, (values[k] for k in keys), strict=True)]
    t = all_reduce_sum(torch.tensor(wv + w, dtype=torch.float64))
    n = len(keys)
    return {k: (t[i] / t[n + i]).item() if t[n + i] > 0 else float("nan") for i, k in enumerate(keys)}


def all_reduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over ranks, in place: afterwards every rank holds the same gradient.

    Each rank's loss is already scaled by the GLOBAL normaliser (its share of the batch), so the sum is the
    gradient of the whole batch's loss. A parameter without a gradient gets zeros first, so every rank makes
    the same calls in the same order (a collective that one rank skips waits forever).
    """
    if not is_active():
        return
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def broadcast_params(model: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s weights to every rank (as DDP does when it wraps a model). No-op alone."""
    if not is_active():
        return
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=src)


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached 1-D tensor (tied weights once, in ``parameters()`` order)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def weights_report(model: torch.nn.Module) -> dict:
    """Proof that every rank ended with the same weights, gathered on every rank.

    Returns ``{"sha256": [digest per rank], "max_abs_diff": [max |w_rank - w_rank0| per rank],
    "identical": bool}``: rank 0's weights are broadcast and compared on each rank, then gathered.
    """
    flat = flat_params(model).float().cpu()
    digest = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
    if not is_active():
        return {"sha256": [digest], "max_abs_diff": [0.0], "identical": True}
    device = next(model.parameters()).device
    ref = flat_params(model).clone()
    dist.broadcast(ref, src=0)
    diff = (flat_params(model) - ref).abs().max().reshape(1).double()
    diffs = [torch.zeros_like(diff) for _ in range(dist.get_world_size())]
    dist.all_gather(diffs, diff.to(device))
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    max_diff = [d.item() for d in diffs]
    return {"sha256": digests, "max_abs_diff": max_diff, "identical": len(set(digests)) == 1}
