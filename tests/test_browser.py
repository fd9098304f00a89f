"""A real browser runs chapter 01 in JupyterLab, turns the gamma slider and opens the quiz.

What it does: start JupyterLab on a free local port (own token, own temporary config, runtime,
settings and workspace folders, autosave off, and the course's lab settings from
``jupyter/lab-settings/overrides.json``, which ``make install`` copies into the venv), open
``notebooks/01_rl_basics.ipynb`` in headless Chromium driven by Playwright (the system's Chromium
through ``executable_path``; nothing is downloaded), run all cells from the Run menu, wait for the
``gamma`` slider to render, move it with the keyboard, and check that the figure under it changed
and was drawn once. Then check the quiz: it renders as widgets (radio buttons), shows no answer or
explanation before the learner answers, and explains an answer after "Check". And JupyterLab's
"official Jupyter news?" prompt stays away (the course's settings answer it). The server is always
stopped afterwards, and the notebook file must be left exactly as it was.

Needs the Debian/Ubuntu packages ``chromium`` and ``chromium-driver`` (``make test`` installs them as
root with apt-get) or ``RLCOURSE_CHROMIUM=/path/to/chromium``. Without them the test is skipped with a
message saying what to install, except with ``CI=true``, where it fails.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("browser")  # one worker runs it; it has its own port anyway

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/01_rl_basics.ipynb"
COURSE_LAB_SETTINGS = ROOT / "jupyter" / "lab-settings" / "overrides.json"  # what `make install` installs
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAB_SETTINGS = {  # JupyterLab user settings for the test's own settings folder
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},  # never write outputs into the repo
    "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True},  # no kernel dialog
}  # the news prompt is switched off by the course's own settings (COURSE_LAB_SETTINGS), not here
INSTALL_HINT = (
    "install the Debian/Ubuntu packages 'chromium' and 'chromium-driver' (sudo apt-get install chromium "
    "chromium-driver) and the Python package playwright (pip install -e '.[dev]'), or set RLCOURSE_CHROMIUM "
    "to a Chromium binary"
)


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser test cannot run on CI: {reason}; {INSTALL_HINT}")
    pytest.skip(f"browser test skipped: {reason}; {INSTALL_HINT}")


def _chromium() -> str:
    path = os.environ.get("RLCOURSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        _skip_or_fail(f"no Chromium at {path}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port; yields its base URL and token; always stopped afterwards."""
    tmp = tmp_path_factory.mktemp("jupyter")
    for plugin, value in LAB_SETTINGS.items():
        folder, name = plugin.split(":")
        (tmp / "settings" / folder).mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / folder / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    app_settings = tmp / "app_settings" / "overrides.d"  # where JupyterLab reads installed overrides
    app_settings.mkdir(parents=True)
    shutil.copy(COURSE_LAB_SETTINGS, app_settings / "rlcourse.json")
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        IPYTHONDIR=str(tmp / "ipython"),
    )
    for name in ("RLCOURSE_QUIZ_TEXT", "RLCOURSE_WIDGETS"):  # set for unit tests; a learner has neither
        env.pop(name, None)
    port, token = _free_port(), os.urandom(16).hex()
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
        f"--LabApp.app_settings_dir={tmp / 'app_settings'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in the finalizer below
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {proc.returncode}:\n{(tmp / 'server.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start in 60 s:\n{(tmp / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url, token
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        log.close()


def _figure_under_slider(page) -> str:
    """The data URL of the image the gamma slider's interactive output currently shows."""
    box = page.locator(".widget-interact").filter(has=page.locator(".widget-label", has_text="gamma"))
    img = box.locator(".jp-OutputArea-output img").first
    img.wait_for(state="visible", timeout=30_000)
    return img.get_attribute("src") or ""


def _quiz_questions() -> list:
    """The questions chapter 01's quiz cell shows: ``show_quiz("01")``, or an inline list in older copies."""
    from rlcourse.quiz import Question, load_quiz

    cells = json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    src = next(
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and "show_quiz(" in "".join(c["source"])
    )
    call = next(
        n
        for n in ast.walk(ast.parse(_python(src)))
        if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("show_quiz")
    )
    if isinstance(call.args[0], ast.Constant):
        return load_quiz(call.args[0].value)
    return eval(compile(ast.Expression(call.args[0]), NOTEBOOK, "eval"), {"Question": Question})


def _python(src: str) -> str:
    """A cell's source without IPython magics and shell escapes, so that ``ast`` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())


def _check_quiz(page, expect) -> None:
    """The quiz is widgets; no answer or explanation shows (nor sits in the cell above) before Check."""
    questions = _quiz_questions()
    explanations = [e for q in questions for e in q.explanations]
    strings = [  # every string literal in the notebook's code (implicit concatenations joined)
        node.value
        for cell in json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "code"
        for node in ast.walk(ast.parse(_python("".join(cell["source"]))))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    in_source = [e for e in explanations if any(e in s for s in strings)]
    assert not in_source, (
        f"{NOTEBOOK} shows quiz explanations in its source, e.g. {in_source[0]!r}: use show_quiz('01')"
    )
    quiz = page.locator(".rlcourse-quiz").first
    quiz.wait_for(state="attached", timeout=30_000)
    quiz.scroll_into_view_if_needed()
    expect(quiz).to_be_visible()
    expect(quiz.locator(".widget-radio-box input[type='radio']")).to_have_count(
        sum(len(q.options) for q in questions)
    )
    expect(quiz).to_contain_text(questions[0].text)
    shown = page.locator("body").inner_text()
    leaked = [e for e in explanations if e in shown]
    assert not leaked, f"the quiz shows an explanation before the learner answers: {leaked[0]!r}"
    assert "VBox(" not in shown, "a widget shows as text"
    quiz.locator(".widget-radio-box input[type='radio']").first.check()
    quiz.locator("button", has_text="Check").first.click()
    expect(quiz).to_contain_text(questions[0].explanations[0], timeout=10_000)  # the answer's explanation


def _check_no_news_prompt(page, url: str, token: str) -> None:
    """The course's settings answer JupyterLab's first-open "official Jupyter news?" question: never."""
    plugin = "@jupyterlab/apputils-extension:notification"
    with urllib.request.urlopen(f"{url}/lab/api/settings/{plugin}?token={token}", timeout=10) as r:
        schema = json.load(r)["schema"]
    assert schema["properties"]["fetchNews"]["default"] == "false", (
        "the course's lab settings were not applied"
    )
    prompts = page.locator(".Toastify__toast", has_text="Jupyter news")
    assert prompts.count() == 0, "JupyterLab asked about official Jupyter news"


def test_gamma_slider_redraws_the_return_plot(lab):
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _skip_or_fail("the Python package playwright is not installed")
    chromium = _chromium()
    url, token = lab
    nb_path = ROOT / NOTEBOOK
    before_bytes = nb_path.read_bytes()
    checkpoints = nb_path.parent / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/lab/tree/{NOTEBOOK}?reset&token={token}", timeout=60_000)
                page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
                # the kernel must be up before "Run All" (the status bar then reads "Python 3 ... | Idle")
                idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"Python.*\| Idle"))
                try:
                    idle.first.wait_for(timeout=60_000)
                except PlaywrightTimeout:
                    accept = page.locator(".jp-Dialog .jp-mod-accept")  # a "Select Kernel" dialog, if any
                    if accept.count():
                        accept.first.click()
                    idle.first.wait_for(timeout=30_000)
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator("[data-command='runmenu:run-all']").click()

                slider = page.locator(".widget-slider").filter(
                    has=page.locator(".widget-label", has_text="gamma")
                )
                slider.first.wait_for(state="visible", timeout=60_000)
                readout = slider.first.locator(".widget-readout")
                expect(readout).to_have_text("0.90", timeout=30_000)  # the notebook's GAMMA
                first = _figure_under_slider(page)
                assert first.startswith("data:image/png"), first[:60]

                handle = slider.first.locator(".noUi-handle").first
                handle.focus()
                for _ in range(2):
                    handle.press("ArrowLeft")
                try:
                    page.wait_for_function(
                        "(old) => { const b = [...document.querySelectorAll('.widget-interact')]"
                        ".find(e => e.textContent.includes('gamma'));"
                        " const i = b && b.querySelector('.jp-OutputArea-output img');"
                        " return i && i.src !== old; }",
                        arg=first,
                        timeout=30_000,
                    )
                except PlaywrightTimeout:
                    pytest.fail("moving the gamma slider did not redraw the figure under it within 30 s")
                expect(readout).to_have_text("0.80", timeout=10_000)  # two steps of 0.05 to the left
                second = _figure_under_slider(page)
                assert second.startswith("data:image/png") and second != first, (
                    "moving gamma did not redraw the plot"
                )
                box = page.locator(".widget-interact").filter(
                    has=page.locator(".widget-label", has_text="gamma")
                )
                expect(box.first.locator(".jp-OutputArea-output img")).to_have_count(1)  # drawn once

                # let "Run All" finish: every code cell numbered, or a traceback (Run All stops there)
                page.wait_for_function(
                    "() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];"
                    " const e = [...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".some(o => o.textContent.includes('Traceback (most recent call last)'));"
                    " return e || (p.length > 0 && p.every(x => /\\[\\d+\\]/.test(x.textContent))); }",
                    timeout=60_000,
                )
                errors = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
                assert errors.count() == 0, (
                    f"a cell raised an error:\n{(errors.first.text_content() or '')[:1500]}"
                )
                _check_quiz(page, expect)
                _check_no_news_prompt(page, url, token)
            finally:
                browser.close()
    finally:
        if not had_checkpoints:  # JupyterLab makes a checkpoint when it opens a notebook; tidy it up
            shutil.rmtree(checkpoints, ignore_errors=True)
        if nb_path.read_bytes() != before_bytes:  # never leave executed outputs in the repository
            nb_path.write_bytes(before_bytes)
            pytest.fail(f"{NOTEBOOK} was modified by JupyterLab during the test (restored it)")
