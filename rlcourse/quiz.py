"""Self-check quizzes (every chapter ends with one): multiple choice with an explanation per answer.

    from rlcourse.quiz import show_quiz
    show_quiz("04")   # the questions of chapter 04, kept in rlcourse/quizzes/ch04.py

The questions live in the package (``rlcourse.quizzes.chNN.QUESTIONS``), not in the notebook, so a
learner does not see the answers in the cell above the quiz. A list of :class:`Question` works too.

What is shown, and where:

- **JupyterLab** (a live widget frontend, see :func:`rlcourse.widgets.widget_frontend`): radio
  buttons and a "Check" button per question; an explanation appears only after the learner answers.
- **Static views** (HTML exports, GitHub, the course website) of a notebook executed headless: the
  questions and their options as HTML, each answer folded away in a ``<details>`` element. The
  displayed object carries this ``text/html`` (and a ``text/plain`` list without answers) in JupyterLab
  too, so a saved notebook never shows as ``VBox(...)``.
- ``RLCOURSE_QUIZ_TEXT=1``: printed as text *with* the answers (an answer key for teachers).
"""

from __future__ import annotations

import html
import importlib
import os
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Question:
    """A multiple-choice question. ``answer`` indexes ``options``; one explanation per option."""

    text: str
    options: Sequence[str]
    answer: int
    explanations: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"question {self.text!r} needs at least two options")
        if len(self.explanations) != len(self.options):
            raise ValueError(
                f"question {self.text!r}: {len(self.options)} options but {len(self.explanations)} explanations"
            )
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"question {self.text!r}: answer {self.answer} is not an option index")

    def feedback(self, choice: int) -> str:
        """The text shown after a learner picks option ``choice``."""
        verdict = "✓ Right." if choice == self.answer else "✗ Not quite."
        return f"{verdict} {self.explanations[choice]}"


def chapters_with_quizzes() -> list[str]:
    """The chapters that have a quiz module in ``rlcourse.quizzes`` (e.g. ``["00", "01", ...]``)."""
    import rlcourse.quizzes as package

    names = (m.name for m in pkgutil.iter_modules(package.__path__))
    return sorted(n[2:] for n in names if n.startswith("ch") and n[2:].isdigit())


def load_quiz(chapter: str | int) -> list[Question]:
    """The questions of ``chapter`` (``"04"`` or ``4``) from ``rlcourse.quizzes.chNN.QUESTIONS``."""
    key = str(chapter).strip()
    if isinstance(chapter, bool) or not key.isdigit():
        raise ValueError(
            f"show_quiz: chapter must be a chapter number such as '04', got {chapter!r}; "
            f"chapters with a quiz: {', '.join(chapters_with_quizzes()) or 'none yet'}"
        )
    name = f"rlcourse.quizzes.ch{key.zfill(2)}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:  # the quiz module exists but imports something missing: not ours to hide
            raise
        raise ValueError(
            f"show_quiz: chapter {chapter!r} has no quiz (no module {name}); chapters with a quiz: "
            f"{', '.join(chapters_with_quizzes()) or 'none yet'}, e.g. show_quiz('04')"
        ) from None
    questions = getattr(module, "QUESTIONS", None)
    if not isinstance(questions, list | tuple) or not all(isinstance(q, Question) for q in questions):
        raise ValueError(f"{name}.QUESTIONS must be a list of rlcourse.quiz.Question, got {questions!r:.80}")
    return list(questions)


def show_quiz(questions: str | int | Sequence[Question], title: str = "Self-check quiz") -> None:
    """Display the quiz (returns None, so it shows once); see the module docstring for where and how.

    ``questions``: a chapter number (``"04"``) or a list of :class:`Question`.
    """
    if isinstance(questions, str | int):
        questions = load_quiz(questions)
    if not questions:
        raise ValueError("a quiz needs at least one question")
    if not all(isinstance(q, Question) for q in questions):
        bad = next(q for q in questions if not isinstance(q, Question))
        raise TypeError(f"show_quiz: every question must be a rlcourse.quiz.Question, got {bad!r:.80}")
    if os.environ.get("RLCOURSE_QUIZ_TEXT"):
        _print_quiz(questions, title)
        return
    from IPython.display import display

    from rlcourse.widgets import widget_frontend

    display(Quiz(questions, title, live=widget_frontend()))


class Quiz:
    """A displayed quiz: live widgets when ``live``, and always a static HTML and text fallback."""

    def __init__(self, questions: Sequence[Question], title: str = "Self-check quiz", live: bool = False):
        self.questions = list(questions)
        self.title = title
        self.box = _widgets(self.questions, title) if live else None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": self.text(), "text/html": self.html()}
        if self.box is not None:
            view = "application/vnd.jupyter.widget-view+json"
            data[view] = self.box._repr_mimebundle_()[view]
        return data

    def __repr__(self) -> str:
        return self.text()

    def text(self) -> str:
        """Questions and options, no answers."""
        lines = [self.title]
        for i, q in enumerate(self.questions, 1):
            lines.append(f"{i}. {q.text}")
            lines += [f"   {chr(97 + k)}) {o}" for k, o in enumerate(q.options)]
        lines.append("(Answers: press Check in JupyterLab, or unfold them in the HTML view.)")
        return "\n".join(lines)

    def html(self) -> str:
        """Questions and options; each answer and every explanation folded in a ``<details>``."""
        esc = html.escape
        parts = [f'<div class="rlcourse-quiz"><h4>{esc(self.title)}</h4><ol>']
        for q in self.questions:
            options = "".join(f"<li>{chr(97 + k)}) {esc(o)}</li>" for k, o in enumerate(q.options))
            why = "".join(
                f"<li>{chr(97 + k)}) {'✓' if k == q.answer else '✗'} {esc(e)}</li>"
                for k, e in enumerate(q.explanations)
            )
            parts.append(
                f'<li><p><b>{esc(q.text)}</b></p><ul style="list-style: none">{options}</ul>'
                f"<details><summary>Show the answer</summary><p>Answer: {chr(97 + q.answer)}) "
                f"{esc(q.options[q.answer])}</p><ul>{why}</ul></details></li>"
            )
        parts.append("</ol><p><small>In JupyterLab this quiz has buttons: run the cell.</small></p></div>")
        return "".join(parts)


def _widgets(questions: Sequence[Question], title: str) -> Any:
    """Radio buttons and a Check button per question; feedback appears only after Check."""
    import ipywidgets as w

    boxes = [w.HTML(f"<h4>{html.escape(title)}</h4>")]
    for i, q in enumerate(questions, 1):
        radio = w.RadioButtons(
            options=[(o, k) for k, o in enumerate(q.options)], value=None, layout=w.Layout(width="auto")
        )
        out = w.HTML("")
        button = w.Button(description="Check", button_style="info")

        def on_click(_, q=q, radio=radio, out=out):
            out.value = (
                "Pick an answer first." if radio.value is None else html.escape(q.feedback(radio.value))
            )

        button.on_click(on_click)
        boxes.append(w.VBox([w.HTML(f"<b>{i}. {html.escape(q.text)}</b>"), radio, button, out]))
    return w.VBox(boxes, _dom_classes=["rlcourse-quiz"])


def _print_quiz(questions: Sequence[Question], title: str) -> None:
    print(title)
    for i, q in enumerate(questions, 1):
        print(f"{i}. {q.text}")
        for k, o in enumerate(q.options):
            mark = "*" if k == q.answer else " "
            print(f"   {mark} {chr(97 + k)}) {o} — {q.explanations[k]}")
