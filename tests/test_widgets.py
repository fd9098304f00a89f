"""Sliders and quizzes (rlcourse.widgets, rlcourse.quiz): headless without widgets, live with them.

- ``interact`` outside a live widget frontend creates no widget (so nbclient has no ``Output`` widget
  to answer on the shell socket: the cause of jupyter/nbclient#312 hangs) and draws the figure once,
  at the values ``ipywidgets.interact`` would start with; in a live kernel it draws once per change.
- ``show_quiz`` displays a bundle with a static HTML fallback whose answers are folded in
  ``<details>``; questions load by chapter with a clear error for an unknown one.
- Every notebook uses ``rlcourse.widgets.interact``, never ipywidgets' ``interact`` or ``Output``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import types
from pathlib import Path

import pytest

from rlcourse import widgets
from rlcourse.quiz import Question, Quiz, chapters_with_quizzes, load_quiz, show_quiz
from rlcourse.widgets import initial_values, interact, widget_frontend

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
QUESTIONS = [
    Question(
        "What does gamma do?", ["discounts", "explores"], 0, ["EXPL-A later rewards count less", "EXPL-B no"]
    ),
    Question("Is <b> escaped?", ["yes & no", "no"], 1, ["EXPL-C one", "EXPL-D two"]),
]


class _FakeKernel:
    def __init__(self, allow_stdin: bool):
        self.allow_stdin = allow_stdin

    def get_parent(self):
        return {"content": {"allow_stdin": self.allow_stdin}}


# ----- which mode -------------------------------------------------------------------------------


def test_widget_frontend_env_and_kernel(monkeypatch):
    monkeypatch.delenv(widgets.MODE_ENV, raising=False)
    assert not widget_frontend()  # pytest: no kernel
    monkeypatch.setattr(widgets, "_kernel", lambda: _FakeKernel(allow_stdin=True))
    assert widget_frontend()  # JupyterLab's execute requests allow input()
    monkeypatch.setattr(widgets, "_kernel", lambda: _FakeKernel(allow_stdin=False))
    assert not widget_frontend()  # nbclient's do not
    monkeypatch.setenv(widgets.MODE_ENV, "live")
    assert widget_frontend()
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    monkeypatch.setattr(widgets, "_kernel", lambda: _FakeKernel(allow_stdin=True))
    assert not widget_frontend()
    monkeypatch.setenv(widgets.MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match="RLCOURSE_WIDGETS='sometimes'.*'live' or 'static'"):
        widget_frontend()


# ----- the values a static figure is drawn at -----------------------------------------------------


def _ipywidgets_values(fn, kwargs):
    """What ipywidgets.interact itself starts with (its widgets work without a kernel, on a dummy comm)."""
    import ipywidgets

    w = ipywidgets.interactive(fn, **kwargs)
    try:
        return {c._kwarg: c.get_interact_value() for c in w.kwargs_widgets}
    finally:
        w.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"a": (0, 10)},
        {"a": (0.0, 1.0)},
        {"a": (0.0, 1.0, 0.3)},
        {"a": (1, 20, 3)},
        {"a": (0.0, 1.0, 0.05)},  # b from its default 0.8 (a float default: a FloatSlider)
        {"a": 5, "b": (0.0, 0.5)},  # b's default 0.8 is clamped into the range
        {"a": 2.5, "b": 0.1},
        {"a": True, "s": ["x", "y", "z"]},
        {"a": "hi", "s": {"one": 1, "two": 2}},
        {"a": [("low", 0.1), ("high", 0.9)]},
        {"a": ["p", "q"], "s": ("x", "y")},
        {"a": (0, 9, 2), "s": ["y", "x"]},  # s's default "x" is an option: it is chosen
    ],
)
def test_initial_values_match_ipywidgets(kwargs):
    import ipywidgets

    def f(a, b=0.8, s="x", n: int = 4):
        return None

    if kwargs.get("s") == ("x", "y"):  # a tuple of strings is no slider: both refuse it
        with pytest.raises(ValueError):
            initial_values(f, kwargs)
        with pytest.raises((ValueError, AttributeError)):
            ipywidgets.interactive(f, **kwargs)
        return
    assert initial_values(f, kwargs) == pytest.approx(_ipywidgets_values(f, kwargs))


def test_initial_values_of_widgets_fixed_and_annotations():
    import ipywidgets

    def f(a, b, c, d=3):
        return None

    f.__annotations__ = {"b": int, "c": str}  # real types (this module postpones its annotations)
    slider = ipywidgets.FloatSlider(value=0.3, min=0.0, max=1.0)
    try:
        got = initial_values(f, {"a": slider, "d": ipywidgets.fixed("kept")})
        assert got == {"a": 0.3, "b": 0, "c": "", "d": "kept"}
    finally:
        slider.close()


def test_interact_refuses_bad_calls_with_clear_messages():
    def plot(eps=0.2):
        return None

    def needs(x):
        return None

    with pytest.raises(TypeError, match=r"no argument 'epsilon'.*\['eps'\]"):
        interact(plot, epsilon=(0.0, 1.0))
    with pytest.raises(TypeError, match=r"argument 'x' of needs\(\) has no control"):
        interact(needs)
    with pytest.raises(ValueError, match=r"cannot make a control for eps=None"):
        interact(plot, eps=None)
    with pytest.raises(ValueError, match=r"step 0.*must be > 0"):
        interact(plot, eps=(0.0, 1.0, 0))
    with pytest.raises(ValueError, match=r"min > max"):
        interact(plot, eps=(1.0, 0.0))
    with pytest.raises(TypeError, match="fn must be a function"):
        interact("plot", eps=(0.0, 1.0))


def test_static_interact_calls_once_and_returns_fn(monkeypatch, capsys):
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    calls = []

    def plot(eps=0.2, label="x"):
        calls.append((eps, label))
        return f"drawn at {eps}"

    assert interact(plot, eps=(0.0, 1.0, 0.05)) is plot
    assert calls == [(0.2, "x")]
    out = capsys.readouterr().out
    assert "eps = 0.2, label = 'x'" in out and "static view" in out
    assert "drawn at 0.2" in out  # a returned value is shown, as interact shows it

    @interact(eps=(0.0, 1.0))
    def decorated(eps=0.7):
        calls.append(eps)

    assert decorated.__name__ == "decorated" and calls[-1] == 0.7


def test_static_interact_does_not_display_a_returned_figure_again(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv(widgets.MODE_ENV, "static")

    def plot(eps=0.2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, eps])
        return fig

    interact(plot, eps=(0.0, 1.0))
    assert "Figure" not in capsys.readouterr().out
    plt.close("all")


# ----- real kernels: headless (nbclient) and live (a client that allows stdin, like JupyterLab) ----


@pytest.fixture(scope="module")
def headless_nb():
    """A notebook with sliders and a quiz executed by nbclient, as nbmake/papermill/nbconvert do."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import matplotlib.pyplot as plt\nfrom rlcourse.widgets import interact\n"
        "from rlcourse.quiz import Question, show_quiz\n\n"
        "def plot(eps=0.2):\n    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)\n"
        "    ax.plot([0, 1], [0, eps])\n    plt.show()\n\n"
        "def plot_returning(eps=0.2):\n    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)\n"
        "    ax.plot([0, 1], [0, eps])\n    return fig",
        "interact(plot, eps=(0.05, 0.5, 0.05));",
        "interact(plot_returning, eps=(0.05, 0.5, 0.05));",
        "show_quiz([Question('Q?', ['a', 'b'], 1, ['EXPL-A', 'EXPL-B'])])",
        "from ipywidgets import FloatSlider\ninteract(plot, eps=FloatSlider(value=0.3, min=0.0, max=1.0));",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this process's environment
        mp.delenv("RLCOURSE_QUIZ_TEXT", raising=False)  # (tests/conftest.py sets it)
        mp.delenv(widgets.MODE_ENV, raising=False)
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        )
        client.execute()
    return nb


def _pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


def test_headless_interact_draws_once_and_creates_no_widget(headless_nb):
    cells = headless_nb.cells
    assert _pngs(cells[1]) == 1 and _pngs(cells[2]) == 1  # one figure each, plt.show() or returned
    assert "eps = 0.2" in str(cells[1].outputs[0]["data"]["text/plain"])
    assert _pngs(cells[4]) == 1 and "eps = 0.3" in str(cells[4].outputs)  # a slider's own value
    state = headless_nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = {m["model_name"] for m in state.get("state", {}).values()}
    # only the FloatSlider the last cell built itself (and its layout/style); no Output, no VBox
    assert models <= {"FloatSliderModel", "LayoutModel", "SliderStyleModel"}, models


def test_headless_quiz_is_static_html_without_visible_answers(headless_nb):
    (out,) = headless_nb.cells[3].outputs
    data = out["data"]
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert "VBox" not in data["text/plain"] and "Q?" in data["text/plain"]
    visible = re.sub(r"<details>.*?</details>", "", data["text/html"], flags=re.S)
    assert "Q?" in visible and "EXPL" not in visible and "EXPL-B" in data["text/html"]


def test_live_kernel_draws_each_figure_once_per_change():
    """A client that allows stdin (JupyterLab does) gets the slider; each change draws one figure."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT))
    try:

        def run(msg_id):
            msgs = []
            while True:
                m = kc.get_iopub_msg(timeout=60)
                if m["parent_header"].get("msg_id") == msg_id:
                    msgs.append(m)
                    if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                        return msgs

        def pngs(msgs):
            return sum("image/png" in m["content"].get("data", {}) for m in msgs)

        code = (
            "import matplotlib.pyplot as plt\nfrom ipywidgets import FloatSlider\n"
            "from rlcourse.widgets import interact\n"
            "def plot(eps=0.2):\n    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)\n"
            "    ax.plot([0, 1], [0, eps])\n    return fig\n"
            "interact(plot, eps=FloatSlider(value=0.2, min=0.0, max=1.0));"
        )
        msgs = run(kc.execute(code, allow_stdin=True))
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert not errors, errors
        assert pngs(msgs) == 1
        views = [
            m for m in msgs if "application/vnd.jupyter.widget-view+json" in m["content"].get("data", {})
        ]
        assert len(views) == 1  # the interact widget: a live slider
        slider = next(
            m["content"]["comm_id"]
            for m in msgs
            if m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"].get("_model_name") == "FloatSliderModel"
        )
        for value in (0.5, 0.9):
            msg = kc.session.msg(
                "comm_msg", {"comm_id": slider, "data": {"method": "update", "state": {"value": value}}}
            )
            kc.shell_channel.send(msg)
            assert pngs(run(msg["header"]["msg_id"])) == 1
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


# ----- quizzes ------------------------------------------------------------------------------------


def test_quiz_bundle_folds_answers_away():
    data = Quiz(QUESTIONS)._repr_mimebundle_()
    assert set(data) == {"text/plain", "text/html"}
    page = data["text/html"]
    assert page.count("<details>") == len(QUESTIONS)
    visible = re.sub(r"<details>.*?</details>", "", page, flags=re.S)
    assert (
        "What does gamma do?" in visible and "Is &lt;b&gt; escaped?" in visible and "<b> escaped" not in page
    )
    for q in QUESTIONS:
        assert not any(e in visible for e in q.explanations)
        assert all(e in page for e in q.explanations)  # inside <details>
    assert "Answer" not in visible.replace("Answers", "")
    assert not any(e in data["text/plain"] for q in QUESTIONS for e in q.explanations)
    assert "discounts" in data["text/plain"] and "VBox" not in data["text/plain"]


def test_live_quiz_hides_explanations_until_check():
    import ipywidgets

    quiz = Quiz(QUESTIONS, live=True)
    try:
        data = quiz._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data and "text/html" in data

        def texts(w):
            own = [str(getattr(w, "value", ""))] + [str(o) for o in getattr(w, "options", ())]
            return own + [t for c in getattr(w, "children", ()) for t in texts(c)]

        shown = " ".join(texts(quiz.box))
        assert "What does gamma do?" in shown and "EXPL" not in shown
        first = quiz.box.children[1]
        radio, button, out = first.children[1:]
        assert isinstance(radio, ipywidgets.RadioButtons) and radio.value is None
        button.click()
        assert out.value == "Pick an answer first."
        radio.value = 1
        button.click()
        assert out.value.startswith("✗ Not quite.") and "EXPL-B" in out.value
    finally:
        quiz.box.close()


def test_show_quiz_static_and_text_modes(monkeypatch, capsys):
    monkeypatch.delenv("RLCOURSE_QUIZ_TEXT", raising=False)
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    assert show_quiz(QUESTIONS) is None
    out = capsys.readouterr().out
    assert "What does gamma do?" in out and "EXPL" not in out
    monkeypatch.setenv("RLCOURSE_QUIZ_TEXT", "1")  # a teacher's answer key
    show_quiz(QUESTIONS)
    assert "* a) discounts — EXPL-A" in capsys.readouterr().out
    with pytest.raises(TypeError, match="must be a rlcourse.quiz.Question"):
        show_quiz([QUESTIONS[0], "not a question"])


def test_load_quiz_by_chapter_and_clear_errors(monkeypatch):
    fake = types.ModuleType("rlcourse.quizzes.ch97")
    fake.QUESTIONS = list(QUESTIONS)
    monkeypatch.setitem(sys.modules, "rlcourse.quizzes.ch97", fake)
    assert load_quiz("97") == QUESTIONS and load_quiz(97) == QUESTIONS
    with pytest.raises(ValueError, match=r"chapter '99' has no quiz \(no module rlcourse.quizzes.ch99\)"):
        load_quiz("99")
    with pytest.raises(ValueError, match=r"chapter must be a chapter number such as '04', got 'four'"):
        show_quiz("four")
    broken = types.ModuleType("rlcourse.quizzes.ch96")
    broken.QUESTIONS = ["not a question"]
    monkeypatch.setitem(sys.modules, "rlcourse.quizzes.ch96", broken)
    with pytest.raises(ValueError, match=r"ch96.QUESTIONS must be a list of rlcourse.quiz.Question"):
        load_quiz("96")


@pytest.mark.parametrize("chapter", chapters_with_quizzes() or ["none"])
def test_every_chapter_quiz_loads_and_hides_its_answers(chapter):
    if chapter == "none":
        pytest.skip("no rlcourse/quizzes/chNN.py yet")
    questions = load_quiz(chapter)
    assert len(questions) >= 3, f"chapter {chapter}: {len(questions)} questions, want >= 3"
    visible = re.sub(r"<details>.*?</details>", "", Quiz(questions).html(), flags=re.S)
    for q in questions:
        for e in q.explanations:
            assert e not in visible, f"chapter {chapter}: explanation visible outside <details>: {e!r}"


# ----- notebooks use the course's interact ----------------------------------------------------------

_FORBIDDEN = {"interact", "interactive", "interactive_output", "interact_manual", "Output"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_use_rlcourse_interact(path):
    """ipywidgets' interact/Output in a notebook can stall headless runs (jupyter/nbclient#312)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        lines = [line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue  # reported by the notebook tests
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ipywidgets"):
                bad = _FORBIDDEN & {a.name for a in node.names}
                assert not bad, (
                    f"{path.name} cell {i}: import {sorted(bad)} from rlcourse.widgets, not ipywidgets"
                )
            if isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN:
                base = ast.unparse(node.value)
                assert base not in ("ipywidgets", "widgets", "w"), (
                    f"{path.name} cell {i}: {base}.{node.attr} — use rlcourse.widgets.interact"
                )


# ----- the course's JupyterLab settings -------------------------------------------------------------


def test_lab_settings_are_valid_for_this_jupyterlab():
    """Every entry of jupyter/lab-settings/overrides.json is a known setting with an allowed value."""
    import jsonschema

    overrides = json.loads((ROOT / "jupyter" / "lab-settings" / "overrides.json").read_text(encoding="utf-8"))
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"  # no news prompt
    for plugin, settings in overrides.items():
        package, name = plugin.split(":")
        schema_file = schemas / package / f"{name}.json"
        assert schema_file.exists(), f"{plugin}: no such JupyterLab plugin settings ({schema_file})"
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        jsonschema.validate(settings, schema)  # additionalProperties: false catches a misspelt key


def test_stress_tool_executes_a_synthetic_notebook(capsys):
    """tools/stress_headless.py (the hang measurement) runs: one small notebook, no hang, no Output widget."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stress_headless", ROOT / "tools" / "stress_headless.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    code = tool.main(
        ["--synthetic", "rlcourse", "--cells", "3", "--runs", "1", "--parallel", "1", "--timeout", "120"]
    )
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("synthetic_rlcourse"))
    assert code == 0 and row.split()[1:5] == ["1", "0", "0", "0"], row  # 1 run; no hang, limit or error
    assert row.split()[-1] == "0", row  # no Output widget
