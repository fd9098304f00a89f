"""Repository rules: notebooks committed clean and built to the course's conventions; set-up files agree."""

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "00_start_here.ipynb" in names and "01_rl_basics.ipynb" in names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_name_is_nn_topic(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: name notebooks NN_topic.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_parameters_with_seed(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), (
        f"{path.name}: tag the first code cell 'parameters'"
    )
    targets = {
        t.id
        for node in ast.walk(ast.parse(first.source))
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert "SEED" in targets, f"{path.name}: the parameters cell must define SEED (found {sorted(targets)})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_quiz_and_summary(path):
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    begins = [ln for src in code for ln in src.splitlines() if ln.strip() == "### BEGIN SOLUTION"]
    ends = [ln for src in code for ln in src.splitlines() if ln.strip() == "### END SOLUTION"]
    assert len(begins) >= 2, (
        f"{path.name}: needs >= 2 exercises (### BEGIN SOLUTION blocks), found {len(begins)}"
    )
    assert len(begins) == len(ends), f"{path.name}: {len(begins)} BEGIN but {len(ends)} END SOLUTION markers"
    assert all(ln.startswith("    ") for ln in begins), (
        f"{path.name}: indent solution markers as the function body"
    )
    assert any("show_quiz(" in src for src in code), f"{path.name}: end with a quiz (show_quiz([...]))"
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any("What to remember" in src for src in md), f"{path.name}: needs a 'What to remember' cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_never_spells_out_the_solution_markers(path):
    """nbgrader and `make student` would treat such a line as a solution to remove."""
    nb = nbformat.read(path, as_version=4)
    bad = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "markdown" and re.search(r"(BEGIN|END) SOLUTION", c.source)
    ]
    assert not bad, (
        f"{path.name}: markdown cells {bad} spell out a solution marker; write BEGIN&nbsp;SOLUTION"
    )


def test_every_exercise_is_followed_by_its_checker():
    for path in NOTEBOOKS:
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        for i, c in enumerate(cells):
            if "### BEGIN SOLUTION" in c.source:
                later = "\n".join(x.source for x in cells[i + 1 : i + 3])
                assert "check" in later, (
                    f"{path.name}: the exercise in code cell {i} has no checker call after it"
                )


def test_environment_yml_lists_every_runtime_dependency():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "rlcourse"
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {canonicalize_name(Requirement(x).name) for x in pip if not x.startswith("-")}
    runtime = {canonicalize_name(Requirement(x).name) for x in _pyproject()["project"]["dependencies"]}
    missing = runtime - listed
    assert not missing, f"environment.yml misses runtime dependencies from pyproject.toml: {sorted(missing)}"
    assert "-e ." in pip, "environment.yml should install the course itself (-e .)"
    pin = (ROOT / "constraints.txt").read_text()
    torch_pins = [
        x for x in pip if not x.startswith("-") and canonicalize_name(Requirement(x).name) == "torch"
    ]
    assert torch_pins and torch_pins[0] in pin, f"torch pin {torch_pins} differs from constraints.txt"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in first_block.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["make lab", "make test"], (
        f"README's first screen should give make lab / make test: {commands}"
    )
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci, ".ci/run must call `make test`, the README's test command"
    runs = [ln for ln in ci if ln and not ln.startswith("#") and re.search(r"\b(pytest|ruff|python)\b", ln)]
    assert not runs, f".ci/run should run `make test` and nothing else, found {runs}"


def test_make_test_executes_every_notebook_with_enough_time():
    makefile = (ROOT / "Makefile").read_text()
    test_rule = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    executed = re.search(r"^EXECUTED := (\S+)$", makefile, re.M).group(1)
    assert executed == "build/notebooks", executed
    # every notebook is copied there first (tools/site/build.py stage), then executed by nbmake in place
    assert "tools/site/build.py stage" in test_rule
    assert "--nbmake" in test_rule and "--overwrite" in test_rule and "$(EXECUTED)" in test_rule
    timeout = int(re.search(r"--nbmake-timeout=(\d+)", test_rule).group(1))
    assert timeout >= 120, f"nbmake cell timeout {timeout}s is below the 120s the course promises"
