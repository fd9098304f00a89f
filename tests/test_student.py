"""The classroom kit (issue 7): student copies, checkers on blank/solved/wrong exercises, quizzes.

Executing every student copy would double CI time, so:
- the student copies of the cheap chapters (``FULL_RUN``) are executed top to bottom with nbclient;
- for every chapter, statically: the copy compiles, each exercise body is exactly nbgrader's stub,
  and the exercise's checker, run on the stub alone, prints "not done yet" without raising;
- the shipped solution of every exercise passes its checker with ``RLCOURSE_STRICT_CHECKS=1``, and a
  deliberately wrong variant of it gets a message naming the case, the expected and the actual value;
- every chapter ends with "What to remember" and a quiz of >= 3 questions.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from rlcourse import student
from rlcourse.exercises import CheckResult

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FULL_RUN = ("00_", "01_")  # chapters whose student copies are executed completely (cheap)
NOT_DONE = "not done yet"


# --------------------------------------------------------------------------- helpers
@dataclass
class Exercise:
    notebook: str
    name: str  # the function's name
    cell: int  # index of the cell defining it
    source: str  # the function definition (full notebook: with the solution)
    checker_cell: int
    checker_calls: list[ast.Call]  # calls like check_x(name) in the checker cell


def _code_cells(nb) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _parse(src: str) -> ast.Module:
    """Parse a cell, ignoring IPython magics/shell lines (which the course avoids anyway)."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.split("\n")]
    return ast.parse("\n".join(lines))


def find_exercises(nb, name: str) -> list[Exercise]:
    """Every function with a solution region, and the checker calls that take it."""
    cells = _code_cells(nb)
    found = []
    for k, (i, src) in enumerate(cells):
        if student.BEGIN_SOLUTION not in src:
            continue
        lines = src.split("\n")
        marker_lines = [n for n, ln in enumerate(lines, 1) if student.BEGIN_SOLUTION in ln]
        tree = _parse(src)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            if not any(node.lineno <= m <= node.end_lineno for m in marker_lines):
                continue
            fn_src = "\n".join(
                lines[
                    (node.decorator_list[0].lineno if node.decorator_list else node.lineno)
                    - 1 : node.end_lineno
                ]
            )
            calls, checker_cell = [], -1
            for j, later in cells[k:]:
                calls = [
                    c
                    for c in ast.walk(_parse(later))
                    if isinstance(c, ast.Call)
                    and ast.unparse(c.func).split(".")[-1].startswith("check")
                    and any(isinstance(a, ast.Name) and a.id == node.name for a in c.args)
                ]
                if calls:
                    checker_cell = j
                    break
            found.append(Exercise(name, node.name, i, fn_src, checker_cell, calls))
    return found


def _namespace(nb) -> dict:
    """Run only the notebook's imports and its parameters cell: what an exercise may rely on."""
    ns: dict = {"__name__": "__exercise__"}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = _parse(cell.source)
        if "parameters" in cell.metadata.get("tags", []):
            exec(compile(tree, "<parameters>", "exec"), ns)
            continue
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if imports:
            exec(compile(ast.Module(imports, []), "<imports>", "exec"), ns)
    return ns


def _run_checkers(ex: Exercise, ns: dict, fn) -> list[CheckResult]:
    results = []
    for call in ex.checker_calls:
        checker = eval(ast.unparse(call.func), ns)
        args = [
            fn if isinstance(a, ast.Name) and a.id == ex.name else eval(ast.unparse(a), ns) for a in call.args
        ]
        kwargs = {kw.arg: eval(ast.unparse(kw.value), ns) for kw in call.keywords}
        results.append(checker(*args, **kwargs))
    return results


def _define(ex_source: str, ns: dict, name: str):
    exec(compile(ex_source, f"<exercise {name}>", "exec"), ns)
    return ns[name]


def _perturb(x, how: int):
    """A plausible wrong answer derived from a right one (None when we can't think of one)."""
    if isinstance(x, bool):
        return not x
    if isinstance(x, (int, float)):
        return [x + 1, -2 * x - 3, x * 1.5 + 0.25][how]
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool:
            return ~x
        if x.is_floating_point():
            return [x + 1, -2 * x - 3, x * 1.5 + 0.25][how]
        return x + 1
    if isinstance(x, np.ndarray):
        if x.dtype == bool:
            return ~x
        return [x + 1, -2 * x - 3, x * 1.5 + 0.25][how]
    if isinstance(x, (tuple, list)) and x:
        first = _perturb(x[0], how)
        return None if first is None else type(x)([first, *x[1:]])
    if isinstance(x, dict) and x:
        key = next(iter(x))
        bad = _perturb(x[key], how)
        return None if bad is None else {**x, key: bad}
    if isinstance(x, str):
        return x + "?"
    return None


def _by_notebook():
    out = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        out.append(pytest.param(path, nb, id=path.stem))
    return out


NB_PARAMS = _by_notebook()


def _exercise_params():
    out = []
    for p in NB_PARAMS:
        try:
            found = find_exercises(p.values[1], p.id)
        except SyntaxError:  # reported by test_chapter_has_exercises_quiz_and_summary, not at collection
            continue
        out += [pytest.param(p.values[1], ex, id=f"{p.id}:{ex.name}") for ex in found]
    return out


EXERCISES = _exercise_params()


# --------------------------------------------------------------------------- the transform
SAMPLE = '''def discounted_return(rewards, gamma):
    """Sum of gamma**t * r_t."""
    ### BEGIN SOLUTION
    g = 0.0
    for r in reversed(rewards):
        g = r + gamma * g
    return g
    ### END SOLUTION


x = 1'''


def test_clear_solutions_matches_nbgrader_stub():
    out, n = student.clear_solutions(SAMPLE)
    assert n == 1
    assert out == (
        'def discounted_return(rewards, gamma):\n    """Sum of gamma**t * r_t."""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()\n\n\nx = 1"
    )


def test_clear_solutions_markdown_and_multiple_regions():
    md, n = student.clear_solutions("Answer:\n### BEGIN SOLUTION\nit is 42\n### END SOLUTION", "markdown")
    assert (md, n) == ("Answer:\nYOUR ANSWER HERE", 1)
    two = SAMPLE + "\n\n" + SAMPLE.replace("discounted_return", "again")
    out, n = student.clear_solutions(two)
    assert n == 2 and out.count("raise NotImplementedError()") == 2 and "reversed" not in out


@pytest.mark.parametrize(
    "bad, words",
    [
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
        ("    ### BEGIN SOLUTION\n    x = 1", "without a matching"),
    ],
)
def test_clear_solutions_rejects_broken_markers(bad, words):
    with pytest.raises(ValueError, match=words):
        student.clear_solutions(bad)


def test_stray_end_marker_is_dropped_like_nbgrader_and_reported():
    out, n = student.clear_solutions("x = 1\n    ### END SOLUTION\ny = 2")
    assert (out, n) == ("x = 1\ny = 2", 0)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1\n### END SOLUTION"),
        nbformat.v4.new_markdown_cell("the `### BEGIN SOLUTION` line"),
        nbformat.v4.new_code_cell(SAMPLE),
    ]
    problems = student.marker_problems(nb)
    assert len(problems) == 2 and "outside" in problems[0] and "prose" in problems[1]


def test_student_notebook_strips_outputs_keeps_tags(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SEED = 0")
    params.metadata["tags"] = ["parameters"]
    ex = nbformat.v4.new_code_cell(SAMPLE)
    ex.outputs = [nbformat.v4.new_output("stream", text="hi")]
    ex.execution_count = 3
    nb.cells = [params, ex]
    src = tmp_path / "nb"
    src.mkdir()
    nbformat.write(nb, src / "00_x.ipynb")
    (src / "figure.png").write_bytes(b"png")
    assert student.main([str(src), str(tmp_path / "student")]) == 0
    out = nbformat.read(tmp_path / "student" / "00_x.ipynb", as_version=4)
    assert out.cells[0].metadata["tags"] == ["parameters"]
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert "reversed" not in out.cells[1].source
    assert (tmp_path / "student" / "figure.png").exists()
    assert out.cells[0].source == "SEED = 0"
    # the full notebook is untouched
    assert "reversed" in nbformat.read(src / "00_x.ipynb", as_version=4).cells[1].source


def test_student_refuses_bad_folders(tmp_path, capsys):
    assert student.main([str(tmp_path / "nope"), str(tmp_path / "s")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must differ"):
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / "a.ipynb")
        student.make_student_copies(tmp_path, tmp_path)


def test_student_folder_is_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "student/" in ignored or "/student/" in ignored


# --------------------------------------------------------------------------- every chapter
def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path, nb", NB_PARAMS)
def test_chapter_has_exercises_quiz_and_summary(path, nb):
    exercises = find_exercises(nb, path.stem)
    assert len(exercises) >= 2, f"{path.name}: {len(exercises)} exercise(s), the course wants >= 2"
    for ex in exercises:
        assert ex.checker_calls, f"{path.name}: exercise {ex.name} has no checker cell after it"
    quizzes = []
    for _, src in _code_cells(nb):
        tree = _parse(src)
        calls = [
            c for c in ast.walk(tree) if isinstance(c, ast.Call) and ast.unparse(c.func).endswith("show_quiz")
        ]
        for call in calls:  # show_quiz("NN") loads rlcourse.quizzes.chNN; show_quiz([...]) lists them inline
            if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                from rlcourse.quiz import load_quiz

                quizzes.append(len(load_quiz(call.args[0].value)))
            else:
                quizzes.append(
                    sum(
                        isinstance(c, ast.Call) and ast.unparse(c.func).endswith("Question")
                        for c in ast.walk(tree)
                    )
                )
    assert quizzes, f"{path.name}: no show_quiz(...) call"
    assert max(quizzes) >= 3, f"{path.name}: the quiz has {max(quizzes)} Question(...)s, want >= 3"
    assert not student.marker_problems(nb), student.marker_problems(nb)
    md = [c.source.lower() for c in nb.cells if c.cell_type == "markdown"]
    assert any("what to remember" in m for m in md), f"{path.name}: no 'What to remember' cell"


@pytest.mark.parametrize("path, nb", NB_PARAMS)
def test_student_copy_compiles_and_every_body_is_the_stub(path, nb):
    copy, n = student.student_notebook(nb, path.name)
    assert n >= 1
    for i, src in _code_cells(copy):
        assert student.BEGIN_SOLUTION not in src and student.END_SOLUTION not in src
        compile(_parse(src), f"{path.name} cell {i}", "exec")
    for ex in find_exercises(nb, path.stem):
        fn = ast.parse(_stub_source(nb, ex)).body[0]
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring stays
        assert [ast.unparse(s) for s in body] == ["raise NotImplementedError()"], (
            f"{path.name}: {ex.name}'s body in the student copy is not just the stub:\n{ast.unparse(fn)}"
        )


def _stub_source(nb, ex: Exercise) -> str:
    """The exercise's function as it reads in the student copy (same cell, same name)."""
    copy, _ = student.student_notebook(nb)
    src = copy.cells[ex.cell].source
    for node in _parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name == ex.name:
            return ast.get_source_segment(src, node)
    raise AssertionError(f"{ex.notebook}: exercise {ex.name} vanished from the student copy")


@pytest.mark.parametrize("nb, ex", EXERCISES)
def test_blank_exercise_reports_not_done(nb, ex, monkeypatch, capsys):
    monkeypatch.delenv("RLCOURSE_STRICT_CHECKS", raising=False)
    ns = _namespace(nb)
    fn = _define(_stub_source(nb, ex), ns, ex.name)
    results = _run_checkers(ex, ns, fn)
    printed = capsys.readouterr().out
    assert results and all(r.status == "not done" for r in results), [r.message for r in results]
    assert NOT_DONE in printed


@pytest.mark.parametrize("nb, ex", EXERCISES)
def test_solution_passes_its_checker(nb, ex, monkeypatch):
    monkeypatch.setenv("RLCOURSE_STRICT_CHECKS", "1")
    ns = _namespace(nb)
    fn = _define(ex.source, ns, ex.name)
    results = _run_checkers(ex, ns, fn)  # strict: a failure raises AssertionError
    assert results and all(results)


@pytest.mark.parametrize("nb, ex", EXERCISES)
def test_wrong_answer_names_case_expected_and_actual(nb, ex, monkeypatch):
    monkeypatch.delenv("RLCOURSE_STRICT_CHECKS", raising=False)
    ns = _namespace(nb)
    right = _define(ex.source, ns, ex.name)
    tried = []
    for how in range(3):

        def wrong(*args, _how=how, **kwargs):
            bad = _perturb(right(*args, **kwargs), _how)
            if bad is None:
                pytest.skip(f"{ex.name} returns a value we cannot perturb into a wrong answer")
            return bad

        results = _run_checkers(ex, ns, wrong)
        failed = [r for r in results if r.status == "failed"]
        tried.append([r.message for r in results])
        if failed:
            msg = failed[0].message
            assert "case" in msg and "expected" in msg and "got" in msg, (
                f"{ex.notebook}:{ex.name}: a wrong answer's message should name the case, the expected and "
                f"the actual value, got: {msg}"
            )
            assert "False" != msg.strip()
            return
    pytest.fail(f"{ex.notebook}:{ex.name}: the checker accepted three wrong answers: {tried}")


# --------------------------------------------------------------------------- full runs of cheap chapters
CHEAP = [p for p in NB_PARAMS if p.id.startswith(FULL_RUN)]


@pytest.mark.parametrize("path, nb", CHEAP)
def test_cheap_student_copies_run_top_to_bottom(path, nb, tmp_path):
    """``make student``'s copy runs under nbmake in its own folder, blank, and says 'not done yet' per exercise."""
    import subprocess
    import sys

    out = tmp_path / "student"
    out.mkdir()
    copy, _ = student.student_notebook(nb, path.name)
    target = out / path.name
    nbformat.write(copy, target)
    env = {
        k: v for k, v in os.environ.items() if k != "RLCOURSE_STRICT_CHECKS"
    }  # blank exercises must not raise
    env.setdefault("RLCOURSE_THREADS", "1")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--nbmake",
            "--nbmake-timeout=600",
            "--overwrite",
            str(target),
        ],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, f"{path.name} student copy failed under nbmake:\n{run.stdout[-3000:]}"
    executed = nbformat.read(target, as_version=4)
    text = []
    for cell in executed.cells:
        for o in cell.get("outputs", []):
            text.append(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")))
    n_ex = len(find_exercises(nb, path.stem))
    assert "\n".join(text).count(NOT_DONE) >= n_ex, f"{path.name}: expected {n_ex} 'not done yet' messages"


def test_student_copies_find_the_shipped_models_from_any_folder(tmp_path):
    """Student copies live in student/ (or anywhere): rlcourse resolves data/ from the package, not the cwd."""
    import subprocess
    import sys

    code = (
        "from rlcourse.lm.model import data_dir, load_model, shipped_models\n"
        "for name in shipped_models():\n"
        "    model, tok = load_model(name)\n"
        "    print(name, sum(p.numel() for p in model.parameters()))\n"
        "print(data_dir())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RLCOURSE_DATA"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(ROOT / "data")
