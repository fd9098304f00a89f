"""Execute slider notebooks headless many times in parallel and report every execution that hangs.

Why: executed by nbclient (what nbmake, papermill, nbconvert and ``jupyter execute`` use), a notebook
could stall after an ``ipywidgets.interact`` cell: the kernel idle, the client waiting for a reply
(jupyter/nbclient#312, nteract/papermill#723). nbclient answers every output that an ``Output``
widget captures by sending a comm message to the kernel's shell socket while the kernel is replying;
ipykernel 7.0-7.3 sends replies raw on that socket, which can swallow the wake-up of a message that
arrives at that moment, so it and every later request stay unread (7.4 sends replies through the
socket's stream: ipython/ipykernel#1529). ``rlcourse.widgets.interact`` creates no widget when no
widget frontend is attached, so nbclient sends nothing while a cell runs. ``--kernel`` runs another
kernel, e.g. one with an older ipykernel, to reproduce the hang.

Each execution runs in its own process (own kernel, own process group) with nbclient's per-cell
timeout (``--timeout``): a cell that does not finish within it is reported as a hang, with the
cell's index and first line, when the kernel went idle or never started the cell (nbclient records
the kernel's busy/idle messages per cell); when the kernel was still busy the cell was only slow and
is counted apart, like an execution that gives no result within ``--limit`` seconds (killed).

    # synthetic notebooks: N slider cells each, with ipywidgets.interact ("before") and ours ("after")
    .venv/bin/python tools/stress_headless.py --synthetic ipywidgets rlcourse --runs 40 --parallel 2
    # the course's slider chapters
    .venv/bin/python tools/stress_headless.py notebooks/01_rl_basics.ipynb --runs 4 --timeout 600

Prints one table row per notebook (executions, hangs, slow runs, errors, seconds) and exits with 1
if any execution hung or was too slow. ``--minutes`` stops starting new executions after that long.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = '''\
import matplotlib.pyplot as plt
from ipywidgets import FloatSlider, IntSlider
{import_line}


def plot(eps=0.2):
    """A small figure, drawn the way the chapters draw theirs."""
    fig, ax = plt.subplots(figsize=(2.5, 1.5), dpi=40)
    ax.plot([0.0, 1.0 - eps, 1.0 + eps, 2.0], [0.0, 1.0 - eps, 1.0 + eps, 1.0 + eps])
    ax.set_title(f"eps = {{eps:.2f}}")
    plt.show()


def show(index=0):
    """Printed output, the way chapter 10's sample viewer shows text."""
    for name in ("start", "PPO", "GRPO"):
        print(f"{{name:5s}} sample {{index}}")
'''
IMPORTS = {
    "ipywidgets": "from ipywidgets import interact",
    "rlcourse": "from rlcourse.widgets import interact",
}
CELLS = (
    'interact(plot, eps=FloatSlider(value=0.2, min=0.05, max=0.5, step=0.05, description="eps"));',
    'interact(show, index=IntSlider(value=0, min=0, max=9, description="sample"));',
    "interact(plot, eps=(0.05, 0.5, 0.05));",
)


def synthetic_notebook(kind: str, n_cells: int, folder: Path) -> Path:
    """Write a notebook with one set-up cell and ``n_cells`` slider cells using ``kind``'s interact."""
    import nbformat

    if kind not in IMPORTS:
        raise SystemExit(f"--synthetic: unknown kind {kind!r}; use one of {sorted(IMPORTS)}")
    cells = [nbformat.v4.new_code_cell(SETUP.format(import_line=IMPORTS[kind]))]
    cells += [nbformat.v4.new_code_cell(CELLS[i % len(CELLS)]) for i in range(n_cells)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"synthetic_{kind}_{n_cells}.ipynb"
    nbformat.write(nb, path)
    return path


def execute_once(path: Path, timeout: int, kernel: str = "python3") -> dict:
    """Child process: execute ``path`` with nbclient; return what happened (one JSON-able dict)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    class Client(NotebookClient):
        seen: dict = {}

        async def _async_handle_timeout(self, timeout, cell=None):  # type: ignore[override]
            # what nbclient had heard from the kernel about this cell when its timeout struck
            Client.seen = dict(cell["metadata"].get("execution", {})) if cell is not None else {}
            return await super()._async_handle_timeout(timeout, cell)

    nb = nbformat.read(path, as_version=4)
    client = Client(
        nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
    )
    started = {}
    client.on_cell_execute = lambda cell, cell_index: started.__setitem__("cell", cell_index)
    t0 = time.monotonic()
    result = {"status": "ok"}
    try:
        client.execute()
    except CellTimeoutError:
        i = started.get("cell", -1)
        seen = Client.seen
        # busy and never idle: the cell is still computing (too slow for --timeout), not stuck
        busy = "iopub.status.busy" in seen and "iopub.status.idle" not in seen
        result = {
            "status": "slow" if busy else "hang",
            "cell": i,
            "line": nb.cells[i].source.splitlines()[0][:80],
        }
        result["kernel"] = (
            "busy" if busy else ("idle" if "iopub.status.idle" in seen else "never started the cell")
        )
    except CellExecutionError as e:
        result = {"status": "error", "cell": started.get("cell", -1), "error": str(e)[-300:]}
    result["seconds"] = round(time.monotonic() - t0, 2)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = [m.get("model_name", "") for m in state.get("state", {}).values()]
    result["widget_models"] = len(models)
    result["output_widgets"] = models.count("OutputModel")
    return result


def run_child(path: Path, timeout: int, limit: float, kernel: str = "python3") -> dict:
    """Run one execution in a new process group; kill it (and its kernel) after ``limit`` seconds."""
    cmd = [sys.executable, __file__, "--one", str(path), "--timeout", str(timeout), "--kernel", kernel]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "limit", "cell": -1, "line": f"(no result within {limit:.0f} s)", "seconds": limit}
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"status": "error", "error": (err or out)[-300:], "seconds": None}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute (e.g. notebooks/01_*.ipynb)")
    p.add_argument("--synthetic", nargs="*", default=[], metavar="KIND",
                   help=f"also write synthetic slider notebooks, one per KIND in {sorted(IMPORTS)}")  # fmt: skip
    p.add_argument("--cells", type=int, default=40, help="slider cells per synthetic notebook (40)")
    p.add_argument("--runs", type=int, default=20, help="executions per notebook (20)")
    p.add_argument("--parallel", type=int, default=2, help="executions at the same time (2)")
    p.add_argument("--timeout", type=int, default=30, help="nbclient's per-cell timeout in s (30)")
    p.add_argument("--limit", type=float, default=None, help="outer limit per execution in s")
    p.add_argument("--minutes", type=float, default=10.0, help="start no new execution after this (10)")
    p.add_argument(
        "--kernel", default="python3", help="kernel name (python3); e.g. one with an older ipykernel"
    )
    p.add_argument("--json", type=Path, default=None, help="write every execution's result here")
    p.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one is not None:
        print(json.dumps(execute_once(a.one.resolve(), a.timeout, a.kernel)), flush=True)
        return 0
    for name in ("runs", "parallel", "timeout", "cells"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(a, name)}")

    tmp = Path(tempfile.mkdtemp(prefix="stress_headless_"))
    paths = [n.resolve() for n in a.notebooks] + [synthetic_notebook(k, a.cells, tmp) for k in a.synthetic]
    if not paths:
        p.error("give notebooks and/or --synthetic KIND")
    limit = a.limit or (a.timeout * 5 + 300)
    jobs = [path for _ in range(a.runs) for path in paths]  # interleaved: every notebook sees the same load
    deadline = time.monotonic() + 60 * a.minutes
    results: dict[Path, list[dict]] = {path: [] for path in paths}

    def job(path: Path) -> None:
        if time.monotonic() > deadline:
            return
        r = run_child(path, a.timeout, limit, a.kernel)
        results[path].append(r)
        if r["status"] != "ok":
            print(f"  {path.name}: {r['status']} {r.get('cell', '')} ({r.get('kernel', '')}) {r.get('line', r.get('error', ''))}",
                  flush=True)  # fmt: skip

    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(a.parallel) as pool:
            list(pool.map(job, jobs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{len(jobs)} executions planned, {sum(map(len, results.values()))} run in "
          f"{(time.monotonic() - t0) / 60:.1f} min, {a.parallel} at a time, per-cell timeout {a.timeout} s, "
          f"kernel {a.kernel}")  # fmt: skip
    print(f"{'notebook':42s} {'runs':>5s} {'hangs':>6s} {'slow':>6s} {'errors':>7s} {'median s':>9s} {'max s':>7s} "
          f"{'Output widgets/run':>19s}")  # fmt: skip
    hung = 0
    for path, rs in results.items():
        secs = [r["seconds"] for r in rs if r["status"] == "ok" and r["seconds"] is not None]
        hangs = sum(r["status"] == "hang" for r in rs)
        over = sum(r["status"] in ("limit", "slow") for r in rs)
        errors = sum(r["status"] == "error" for r in rs)
        outw = max((r.get("output_widgets", 0) for r in rs), default=0)
        hung += hangs + over
        med = f"{statistics.median(secs):.1f}" if secs else "-"
        mx = f"{max(secs):.1f}" if secs else "-"
        print(f"{path.name:42s} {len(rs):5d} {hangs:6d} {over:6d} {errors:7d} {med:>9s} {mx:>7s} {outw:19d}")
    if a.json:
        a.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return 1 if hung else 0


if __name__ == "__main__":
    sys.exit(main())
