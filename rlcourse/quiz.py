"""Self-check quizzes (every chapter ends with one): multiple choice with an explanation per answer.

    from rlcourse.quiz import show_quiz
    show_quiz("04")   # the questions of chapter 04, kept in rlcourse/quizzes/ch04.py

The questions live in the package (``rlcourse.quizzes.chNN.QUESTIONS``), not in the notebook, so a
learner does not see the answers in the cell above the quiz. A list of :class:`Question` works too.

In a notebook this shows ipywidgets radio buttons and a "Check" button; outside a notebook (or with
``RLCOURSE_QUIZ_TEXT=1``) it prints the questions with their answers and explanations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


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


def load_quiz(chapter: str) -> list[Question]:
    """The questions of ``chapter`` (e.g. ``"04"``) from ``rlcourse.quizzes.chNN``."""
    import importlib

    name = f"rlcourse.quizzes.ch{str(chapter).zfill(2)}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise ValueError(
            f"chapter {chapter!r} has no quiz (no module {name}); use e.g. show_quiz('04')"
        ) from e
    return list(module.QUESTIONS)


def show_quiz(questions: str | Sequence[Question], title: str = "Self-check quiz") -> None:
    """Display the quiz as widgets, or print it as text (returns None, so it shows once).

    ``questions``: a chapter number as a string (``"04"``) or a list of :class:`Question`.
    """
    if isinstance(questions, str):
        questions = load_quiz(questions)
    if not questions:
        raise ValueError("a quiz needs at least one question")
    if os.environ.get("RLCOURSE_QUIZ_TEXT"):
        _print_quiz(questions, title)
        return
    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        _print_quiz(questions, title)
        return
    boxes = [w.HTML(f"<h4>{title}</h4>")]
    for i, q in enumerate(questions, 1):
        radio = w.RadioButtons(
            options=[(o, k) for k, o in enumerate(q.options)], value=None, layout=w.Layout(width="auto")
        )
        out = w.HTML("")
        button = w.Button(description="Check", button_style="info")

        def on_click(_, q=q, radio=radio, out=out):
            out.value = "Pick an answer first." if radio.value is None else q.feedback(radio.value)

        button.on_click(on_click)
        boxes.append(w.VBox([w.HTML(f"<b>{i}. {q.text}</b>"), radio, button, out]))
    box = w.VBox(boxes)
    from IPython.display import display

    display(box)


def _print_quiz(questions: Sequence[Question], title: str) -> None:
    print(title)
    for i, q in enumerate(questions, 1):
        print(f"{i}. {q.text}")
        for k, o in enumerate(q.options):
            mark = "*" if k == q.answer else " "
            print(f"   {mark} {chr(97 + k)}) {o} — {q.explanations[k]}")
