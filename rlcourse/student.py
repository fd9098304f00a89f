"""Student copies of the notebooks: solutions removed, outputs stripped (issue 7, docs/teaching.md).

    python -m rlcourse.student notebooks student      # what `make student` runs

Every exercise in the course is a function whose body sits between nbgrader's solution markers::

    def discounted_return(rewards, gamma):
        \"\"\"docstring stays\"\"\"
        ### BEGIN SOLUTION
        ...the solution...
        ### END SOLUTION

A student copy replaces the marked lines, markers included, with nbgrader's code stub at the
indentation of the ``BEGIN`` marker::

        # YOUR CODE HERE
        raise NotImplementedError()

exactly as nbgrader's ``ClearSolutions`` preprocessor does (and ``YOUR ANSWER HERE`` in markdown
cells), so a class can use nbgrader's ``generate_assignment`` instead of this script and get the same
notebooks. The checker cell after each exercise then prints "not done yet" and the copy still runs
top to bottom. Outputs and execution counts are cleared; cell tags (``parameters``) are kept.

The copies find ``data/`` through ``rlcourse`` (paths resolve relative to the package, not the working
directory), so ``student/`` can sit anywhere as long as ``rlcourse`` is importable.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


@dataclass
class StudentCopy:
    """What :func:`make_student_copies` wrote for one notebook."""

    source: Path
    target: Path
    exercises: int  # number of solution regions replaced


def clear_solutions(source: str, cell_type: str = "code") -> tuple[str, int]:
    """Replace each ``BEGIN SOLUTION`` .. ``END SOLUTION`` region of a cell's source by the stub.

    Line for line nbgrader's ``ClearSolutions._replace_solution_region``: a line containing the begin
    delimiter starts a region (replaced by the stub, indented like that line), a line containing the
    end delimiter ends it (a stray end line is dropped, as nbgrader drops it), and the lines in between
    are dropped. Returns ``(new_source, n_regions)``. Raises ``ValueError`` where nbgrader raises: a
    nested or unterminated region (e.g. prose that spells both markers on one line).
    """
    stub = (CODE_STUB if cell_type == "code" else TEXT_STUB).split("\n")
    out: list[str] = []
    in_solution = False
    regions = 0
    for lineno, line in enumerate(source.split("\n"), 1):
        if BEGIN_SOLUTION in line:
            if in_solution:
                raise ValueError(
                    f"line {lineno}: nested '### {BEGIN_SOLUTION}'; close the previous region with "
                    f"'### {END_SOLUTION}' first"
                )
            in_solution = True
            regions += 1
            indent = re.match(r"\s*", line).group(0)
            out.extend(indent + s for s in stub)
        elif END_SOLUTION in line:
            in_solution = False
        elif not in_solution:
            out.append(line)
    if in_solution:
        raise ValueError(
            f"'### {BEGIN_SOLUTION}' without a matching '### {END_SOLUTION}' on a later line (nbgrader fails "
            "here too). Prose that names a marker must not spell it out: in markdown write BEGIN&nbsp;SOLUTION "
            "(outside backticks; it renders with a space), or describe the markers in words."
        )
    return "\n".join(out), regions


def marker_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Places where nbgrader's markers would do something a course author did not mean.

    - a marker in a markdown cell (nbgrader replaces the region by ``YOUR ANSWER HERE`` and deletes
      marker lines; the course's exercises are functions in code cells);
    - an ``END SOLUTION`` line outside a region (nbgrader silently deletes it).
    """
    problems = []
    for i, cell in enumerate(nb.cells):
        inside = False
        for lineno, line in enumerate(cell.source.split("\n"), 1):
            has_begin, has_end = BEGIN_SOLUTION in line, END_SOLUTION in line
            if (has_begin or has_end) and cell.cell_type != "code":
                problems.append(
                    f"cell {i} ({cell.cell_type}) line {lineno}: solution marker in prose: {line.strip()!r}"
                )
            elif has_begin:
                inside = True
            elif has_end:
                if not inside:
                    problems.append(f"cell {i} line {lineno}: '{END_SOLUTION}' outside a solution region")
                inside = False
    return problems


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, int]:
    """Return a stripped copy of ``nb`` (solutions cleared, outputs removed) and the number of regions."""
    nb = copy.deepcopy(nb)
    total = 0
    for i, cell in enumerate(nb.cells):
        try:
            cell.source, n = clear_solutions(cell.source, cell.cell_type)
        except ValueError as err:
            raise ValueError(f"{name}, cell {i}: {err}") from None
        total += n
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return nb, total


def make_student_copies(src: str | Path, dst: str | Path) -> list[StudentCopy]:
    """Write a student copy of every ``*.ipynb`` in ``src`` to ``dst`` (created if needed).

    Other files in ``src`` (images the notebooks show) are copied as they are. A notebook whose markers
    nbgrader would reject is skipped; after writing the others a ``ValueError`` lists every such notebook.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"notebook folder {src} does not exist; run from the repository root")
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no .ipynb files in {src}")
    if dst.resolve() == src.resolve():
        raise ValueError(
            "the student folder must differ from the notebook folder (it would overwrite solutions)"
        )
    dst.mkdir(parents=True, exist_ok=True)
    written, errors = [], []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        try:
            student, n = student_notebook(nb, path.name)
        except ValueError as err:
            errors.append(str(err))
            continue
        target = dst / path.name
        nbformat.write(student, target)
        written.append(StudentCopy(path, target, n))
    for other in sorted(src.iterdir()):
        if other.is_file() and other.suffix != ".ipynb" and not other.name.startswith("."):
            shutil.copy2(other, dst / other.name)
    if errors:
        raise ValueError(
            f"wrote {len(written)} of {len(notebooks)} student notebooks; fix the markers in the others:\n"
            + "\n".join(errors)
        )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", nargs="?", default="notebooks", help="folder with the full notebooks")
    parser.add_argument("dst", nargs="?", default="student", help="folder for the student copies")
    args = parser.parse_args(argv)
    try:
        copies = make_student_copies(args.src, args.dst)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for c in copies:
        print(f"{c.target}: {c.exercises} exercise(s) cleared")
        for problem in marker_problems(nbformat.read(c.source, as_version=4)):
            print(f"warning: {c.source}: {problem}", file=sys.stderr)
    print(f"wrote {len(copies)} student notebooks to {args.dst}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
