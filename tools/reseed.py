"""Run chosen chapters with other seeds and report which assertions failed (issue 11: claims hold for any seed).

    python tools/reseed.py 01 04 --seeds 0 1 2 3 4 5        # chapters x seeds, two at a time
    python tools/reseed.py all --seeds 1 2 --timeout 600 --markdown

Each run is ``papermill -p SEED s`` on a copy of the notebook (the first code cell is tagged
``parameters``), with ``RLCOURSE_STRICT_CHECKS=1`` so exercise checkers raise, a wall-clock limit per
notebook, and one torch thread. The report is a table chapter x seed: ``pass (time)`` or the first line
of the error (an ``AssertionError``'s message names the claim that did not hold). Executed copies are
kept under ``--out`` (default ``build/reseed/``) for reading the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def chapters(names: list[str]) -> list[Path]:
    """Notebook paths for ``["01", "04"]`` or ``["all"]``."""
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names == ["all"]:
        return every
    out = []
    for name in names:
        found = [p for p in every if p.name.startswith(name.zfill(2) + "_")]
        if not found:
            raise SystemExit(
                f"no notebook for chapter {name!r} in {NOTEBOOKS} (have: {[p.name[:2] for p in every]})"
            )
        out += found
    return out


def first_error(executed: Path) -> str:
    """The first error output of an executed notebook, as one line (ename: evalue)."""
    try:
        nb = json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "no executed notebook written"
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue', '')}".splitlines()[0][:200]
    return "failed (no error output; see the log)"


def run_one(notebook: Path, seed: int, out_dir: Path, timeout: int) -> dict:
    """Execute ``notebook`` with ``SEED = seed``; return {chapter, seed, ok, seconds, error}."""
    out = out_dir / f"{notebook.stem}.seed{seed}.ipynb"
    env = dict(
        os.environ, RLCOURSE_STRICT_CHECKS="1", RLCOURSE_THREADS=os.environ.get("RLCOURSE_THREADS", "1")
    )
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(notebook),
        str(out),
        "-p",
        "SEED",
        str(seed),
        "--cwd",
        str(NOTEBOOKS),
        "--no-progress-bar",
        "--log-level",
        "ERROR",
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        ok, error = proc.returncode == 0, ""
        if not ok:
            error = first_error(out)
    except subprocess.TimeoutExpired:
        ok, error = False, f"timed out after {timeout} s"
    return {
        "chapter": notebook.name[:2],
        "seed": seed,
        "ok": ok,
        "seconds": round(time.perf_counter() - start, 1),
        "error": error,
    }


def table(results: list[dict], seeds: list[int]) -> str:
    """A markdown table chapter x seed: ``pass 12 s`` or ``FAIL 12 s``, then the failures listed."""
    chs = sorted({r["chapter"] for r in results})
    cell = {(r["chapter"], r["seed"]): r for r in results}
    lines = ["| chapter | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---:|" * len(seeds)]
    for ch in chs:
        row = [f"{'pass' if cell[ch, s]['ok'] else 'FAIL'} {cell[ch, s]['seconds']:.0f} s" for s in seeds]
        lines.append(f"| {ch} | " + " | ".join(row) + " |")
    fails = [r for r in results if not r["ok"]]
    if fails:
        lines += ["", "Failures:"] + [f"- {r['chapter']} seed {r['seed']}: {r['error']}" for r in fails]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="+", help="chapter numbers (e.g. 01 04) or 'all'")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    ap.add_argument("--timeout", type=int, default=900, help="seconds per notebook run (default 900)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "reseed")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(nb, s) for nb in chapters(args.chapters) for s in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, nb, s, args.out, args.timeout) for nb, s in jobs]
        results = []
        for f in futures:
            r = f.result()
            results.append(r)
            print(
                f"{r['chapter']} seed {r['seed']}: {'pass' if r['ok'] else 'FAIL'} in {r['seconds']} s"
                + (f" — {r['error']}" if r["error"] else ""),
                flush=True,
            )
    print()
    print(table(results, args.seeds))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
