"""Build the course website from the notebooks as the course itself executed them (``make site``).

    python tools/site/build.py stage     # copy notebooks/ to build/notebooks/ + record source hashes
    python tools/site/build.py execute   # execute the copies that are missing, stale or failed
    python tools/site/build.py build     # build/notebooks/ -> static HTML in build/site/ (mkdocs)
    python tools/site/build.py all       # the three in turn (what `make site` runs)

``make test`` runs ``stage``, executes the copies under nbmake (``--overwrite``), then ``build``, so
the notebooks are executed once for both the tests and the site. ``execute`` reuses every copy whose
source hash matches ``notebooks/`` and that ran without an error, so ``make site`` after ``make test``
only builds.

Why MkDocs + Material + mkdocs-jupyter: it renders executed notebooks as they are (no re-execution),
gives navigation in course order with previous/next links, code highlighting and a client-side search
index that Material segments with jieba, so Chinese terms are searchable; everything it serves is
local (theme fonts switched off, MathJax 3 copied from the django-static-mathjax wheel). Jupyter Book 2
/ MyST needs a Node build that downloads its theme at build time, which an offline machine cannot do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"
SITE_SRC = ROOT / "build" / "site_src"
SITE = ROOT / "build" / "site"
HERE = Path(__file__).resolve().parent
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def notebooks() -> list[Path]:
    return sorted(SOURCE.glob("[0-9][0-9]_*.ipynb"))


def machine() -> dict:
    """Where the notebooks were executed (shown on every chapter page)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        gpu, torch_version = None, "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch_version,
        "os": f"{platform.system()} {platform.release()}",
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


# ----- stage and execute ------------------------------------------------------------------------------


def manifest_path() -> Path:
    return EXECUTED / "manifest.json"


def read_manifest() -> dict:
    try:
        return json.loads(manifest_path().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"notebooks": {}}


def write_manifest(manifest: dict) -> None:
    tmp = manifest_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, manifest_path())


def stage(paths: list[Path] | None = None) -> None:
    """Copy the notebooks (all, or ``paths``) to build/notebooks/ and record their source hashes."""
    EXECUTED.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest()
    manifest.update(machine=machine(), commit=git_commit())
    for src in paths or notebooks():
        shutil.copy2(src, EXECUTED / src.name)
        manifest["notebooks"][src.name] = {"sha256": sha256(src)}
    write_manifest(manifest)


def run_ok(nb: nbformat.NotebookNode) -> bool:
    """Every code cell executed and none shows an error."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.strip() and cell.get("execution_count") is None:
            return False
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return False
    return True


def fresh(src: Path, manifest: dict) -> bool:
    """The executed copy of ``src`` matches its current source and ran without an error."""
    copy = EXECUTED / src.name
    entry = manifest["notebooks"].get(src.name, {})
    if not copy.exists() or entry.get("sha256") != sha256(src):
        return False
    return run_ok(nbformat.read(copy, as_version=4))


def execute(timeout: int = 900) -> None:
    """Execute (in build/notebooks/) every notebook whose copy is missing, stale or failed."""
    from nbclient import NotebookClient

    manifest = read_manifest()
    todo = [p for p in notebooks() if not fresh(p, manifest)]
    if not todo:
        print("site: every executed notebook is up to date")
        return
    stage(todo)
    os.environ.setdefault("RLCOURSE_STRICT_CHECKS", "1")
    for src in todo:
        path = EXECUTED / src.name
        print(f"site: executing {src.name} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(EXECUTED)}}
        ).execute()
        nbformat.write(nb, path)
        print(f"site: {src.name} took {time.perf_counter() - start:.0f} s", flush=True)


# ----- build ------------------------------------------------------------------------------------------


def seconds_executed(nb: nbformat.NotebookNode) -> float | None:
    """Wall time from the first cell's start to the last cell's reply (nbclient's timing metadata)."""
    stamps = []
    for cell in nb.cells:
        ex = cell.get("metadata", {}).get("execution", {})
        for key in ("iopub.execute_input", "shell.execute_reply"):
            if key in ex:
                stamps.append(dt.datetime.fromisoformat(ex[key].replace("Z", "+00:00")))
    return (max(stamps) - min(stamps)).total_seconds() if len(stamps) >= 2 else None


def executed_on(nb: nbformat.NotebookNode) -> str | None:
    for cell in nb.cells:
        ex = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex:
            return ex["iopub.execute_input"][:10]
    return None


def seed_of(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            m = re.search(r"^SEED\s*=\s*(\S+)", cell.source, re.M)
            if m:
                return m.group(1)
    return "?"


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def static_outputs(nb: nbformat.NotebookNode) -> None:
    """Widgets cannot run without a kernel: keep each output's static fallback (HTML, figure, text)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data and WIDGET_MIME in data and len(data) > 1:
                del data[WIDGET_MIME]
    nb.metadata.pop("widgets", None)


def machine_text(m: dict) -> str:
    where = m.get("gpu") or f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"
    return f"{where} (torch {m.get('torch', '?')}, Python {m.get('python', '?')}, {m.get('os', '?')})"


def chapter_page(src: Path, manifest: dict) -> tuple[str, str]:
    """Write the executed chapter with a provenance note to build/site_src/; return (title, page path)."""
    nb = nbformat.read(EXECUTED / src.name, as_version=4)
    if not run_ok(nb):
        raise SystemExit(f"site: {EXECUTED / src.name} has not run cleanly; run `make site` (it executes it)")
    static_outputs(nb)
    secs = seconds_executed(nb)
    ran = f"executed {executed_on(nb) or '?'} in {secs:.0f} s " if secs is not None else "executed "
    note = (
        f"> **This page is an executed run** (SEED = {seed_of(nb)}): {ran}on "
        f"{machine_text(manifest.get('machine', {}))}, commit `{manifest.get('commit', '?')}`. "
        f"[Download the notebook](../notebooks/{src.name}) (without outputs) and run it yourself with "
        "`make lab`. Sliders and quizzes are live only in a running notebook; here each slider shows its "
        "figure at the default value and each quiz lists its questions with the answers folded away."
    )
    nb.cells.insert(
        1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, nbformat.v4.new_markdown_cell(note)
    )
    out = SITE_SRC / "chapters" / src.name
    nbformat.write(nb, out)
    return title_of(nb, src.stem), f"chapters/{src.name}"


def section(markdown: str, heading: str) -> str:
    """The text of ``## heading`` up to the next ``## `` heading."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    if not m:
        raise SystemExit(f"site: README.md has no section '## {heading}'")
    return m.group(1)


def glossary() -> str:
    """The glossary table of chapter 01 (the course's reference for Chinese terms)."""
    nb = nbformat.read(SOURCE / "01_rl_basics.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "| English | 中文" in cell.source:
            table = [ln for ln in cell.source.splitlines() if ln.startswith("|")]
            start = next(i for i, ln in enumerate(table) if ln.startswith("| English | 中文"))
            rows = [table[start]]
            rows += [ln for ln in table[start + 1 :] if ln.count("|") == table[start].count("|")]
            return (
                "# Glossary · 术语表\n\nOne Chinese term per idea, used in every chapter (from chapter 01).\n\n"
                + "\n".join(rows)
                + "\n"
            )
    raise SystemExit("site: chapter 01 has no glossary table ('| English | 中文 ...')")


def mathjax_dir() -> Path:
    """MathJax 3's browser build (es5/) from the django-static-mathjax wheel; no Django needed to copy it."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    folder = (
        Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" if spec else None
    )
    if folder is None or not (folder / "tex-chtml.js").exists():
        raise SystemExit("site: MathJax not found; install the dev extras: pip install -e '.[dev]'")
    return folder


def build() -> None:
    """build/notebooks/ (executed) + docs -> build/site/."""
    manifest = read_manifest()
    shutil.rmtree(SITE_SRC, ignore_errors=True)
    (SITE_SRC / "chapters").mkdir(parents=True)
    (SITE_SRC / "notebooks").mkdir()
    chapters = []
    for src in notebooks():
        chapters.append(chapter_page(src, manifest))
        shutil.copy2(src, SITE_SRC / "notebooks" / src.name)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (
        '# rlcourse\n\nReinforcement learning from "what is a policy?" to PPO, GRPO and DPO on a tiny language '
        "model. Every page below is a notebook as the course executed it: each number and figure is a real run.\n\n"
        "```bash\nmake lab    # install and open the course in JupyterLab\nmake test   # check everything (what CI runs)\n```\n\n"
        "## The course map\n" + section(readme, "What you will learn")
    )
    (SITE_SRC / "index.md").write_text(index, encoding="utf-8")
    (SITE_SRC / "glossary.md").write_text(glossary(), encoding="utf-8")
    (SITE_SRC / "performance.md").write_text(
        "# Performance\n" + section(readme, "Performance"), encoding="utf-8"
    )
    pages = [
        {"Start": "index.md"},
        {"Chapters": [{t: p} for t, p in chapters]},
        {"Glossary · 术语表": "glossary.md"},
    ]
    for name, title in (("teaching.md", "Teaching guide"), ("errata.md", "Errata")):
        if (ROOT / "docs" / name).exists():
            (SITE_SRC / name).write_text((ROOT / "docs" / name).read_text(encoding="utf-8"), encoding="utf-8")
            pages.append({title: name})
    pages.append({"Performance": "performance.md"})
    shutil.copytree(mathjax_dir(), SITE_SRC / "assets" / "mathjax")
    shutil.copy2(HERE / "mathjax-config.js", SITE_SRC / "assets" / "mathjax-config.js")
    shutil.copy2(HERE / "extra.css", SITE_SRC / "assets" / "extra.css")
    config = {
        "site_name": "rlcourse",
        "site_description": "Reinforcement learning from policies to PPO, GRPO and DPO, executed.",
        "docs_dir": str(SITE_SRC),
        "site_dir": str(SITE),
        "use_directory_urls": False,  # pages work from file:// as well as from a server
        "theme": {
            "name": "material",
            "font": False,  # no Google Fonts: nothing is fetched at view time
            "features": [
                "navigation.footer",
                "navigation.sections",
                "navigation.indexes",
                "search.highlight",
                "content.code.copy",
            ],
        },
        "plugins": [
            {"search": {"lang": ["en", "zh"]}},
            {"mkdocs-jupyter": {"include": ["chapters/*.ipynb"], "execute": False, "include_source": True}},
        ],
        "markdown_extensions": ["tables", "admonition", {"pymdownx.arithmatex": {"generic": True}}],
        "extra_javascript": ["assets/mathjax-config.js", "assets/mathjax/tex-chtml.js"],
        "extra_css": ["assets/extra.css"],
        "nav": pages,
    }
    config_path = SITE_SRC.parent / "mkdocs.yml"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    shutil.rmtree(SITE, ignore_errors=True)
    start = time.perf_counter()
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", NO_MKDOCS_2_WARNING="1")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(config_path)],
        check=True,
        env=env,
    )
    n = len(list(SITE.rglob("*.html")))
    print(
        f"site: {n} HTML pages in {SITE.relative_to(ROOT)} ({time.perf_counter() - start:.0f} s); "
        f"open {SITE.relative_to(ROOT)}/index.html or run: python -m http.server -d {SITE.relative_to(ROOT)}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["stage", "execute", "build", "all"])
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell when executing (default 900)")
    args = ap.parse_args()
    if args.step == "stage":
        stage()
    if args.step in ("execute", "all"):
        execute(args.timeout)
    if args.step in ("build", "all"):
        build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
