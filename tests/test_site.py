"""A real browser reads every page of the course website (``make site`` -> build/site/), offline.

The site is served from a local port by a thread of this test; headless Chromium (Debian's, driven by
Playwright, nothing downloaded) opens each chapter page and checks: no console error and no failed
request (so nothing is fetched from a CDN), every figure decodes, math is typeset, no traceback or
widget repr is shown, previous/next and every internal link resolve, search finds "优势" and
"advantage", and Chinese text is drawn with real glyphs, not empty boxes. Screenshots of two pages are
saved in the test's temporary folder.

``make test`` builds the site from the notebooks its own run executed, then runs this file. Run alone
after ``make site``. Without a built site or Chromium the test is skipped, except with ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("RLCOURSE_SITE", ROOT / "build" / "site"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_REPRS = ("IntSlider(", "FloatSlider(", "FloatLogSlider(", "VBox(", "interactive(children", "HBox(")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"site test cannot run on CI: {reason}")
    pytest.skip(f"site test skipped: {reason}")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server():
    """build/site/ served on a free local port; yields the base URL."""
    if not (SITE / "index.html").exists():
        _skip_or_fail(f"no site at {SITE}; build it with `make site`")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    path = os.environ.get("RLCOURSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        _skip_or_fail(f"no Chromium at {path}; install Debian's chromium (make browser-deps)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu", "--disable-quic"])
        yield b
        b.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _open(browser, url: str):
    """A page at ``url`` with every console error and failed request recorded in ``page.problems``."""
    page = browser.new_page()
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: page.problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="load")
    return page


def _wait_for_math(page) -> None:
    page.wait_for_function(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000
    )
    page.evaluate("() => MathJax.startup.promise.then(() => true)")


def test_site_has_every_chapter():
    if not (SITE / "index.html").exists():
        _skip_or_fail(f"no site at {SITE}; build it with `make site`")
    for nb in NOTEBOOKS:
        assert (SITE / "chapters" / f"{nb.stem}.html").exists(), f"the site has no page for {nb.name}"
        assert (SITE / "notebooks" / nb.name).exists(), f"the site offers no download of {nb.name}"
    for page in ("glossary.html", "performance.html"):
        assert (SITE / page).exists(), f"the site has no {page}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_chapter_page(server, browser, notebook, tmp_path):
    url = urljoin(server, f"chapters/{notebook.stem}.html")
    page = _open(browser, url)
    try:
        _wait_for_math(page)
        page.wait_for_load_state("networkidle")
        assert not page.problems, f"{notebook.stem}: " + "; ".join(page.problems[:5])
        broken = page.eval_on_selector_all(
            "article img",
            "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))",
        )
        assert not broken, f"{notebook.stem}: figures that do not decode: {broken}"
        text = page.inner_text("article")
        outputs = " ".join(
            page.eval_on_selector_all(".jp-OutputArea-output", "os => os.map(o => o.innerText)")
        )
        assert "Traceback (most recent call last)" not in outputs, (
            f"{notebook.stem}: a traceback is on the page"
        )
        assert not page.query_selector(".jp-OutputArea-output[data-mime-type*='error']"), (
            f"{notebook.stem}: error output"
        )
        shown = [w for w in WIDGET_REPRS if w in outputs]
        assert not shown, f"{notebook.stem}: widget reprs on the page instead of their figures: {shown}"
        markdown = " ".join(page.eval_on_selector_all(".jp-MarkdownCell", "cs => cs.map(c => c.innerText)"))
        raw = re.findall(r"\$[^$\s][^$\n]{0,60}\$", markdown)
        assert not raw, f"{notebook.stem}: math left untypeset: {raw[:3]}"
        assert "This page is an executed run" in text and "SEED" in text, (
            f"{notebook.stem}: no provenance note"
        )
        for rel in ("prev", "next"):
            link = page.query_selector(f"a.md-footer__link--{rel}")
            if rel == "prev" or notebook != NOTEBOOKS[-1]:
                assert link is not None, f"{notebook.stem}: no {rel} link"
            if link is not None:
                target = urljoin(url, link.get_attribute("href"))
                assert _status(target) == 200, f"{notebook.stem}: {rel} link {target} does not resolve"
        if notebook.stem.startswith(("00", "04")):
            page.screenshot(path=str(tmp_path / f"{notebook.stem}.png"), full_page=False)
    finally:
        page.close()


def test_every_internal_link_resolves(server, browser):
    seen, bad = set(), []
    for html in sorted(SITE.rglob("*.html")):
        url = urljoin(server, html.relative_to(SITE).as_posix())
        page = browser.new_page()
        page.goto(url, wait_until="domcontentloaded")
        hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
        page.close()
        for href in hrefs:
            target = urldefrag(href).url
            if urlparse(target).netloc != urlparse(server).netloc or target in seen:
                continue
            seen.add(target)
            if _status(target) != 200:
                bad.append(f"{html.name} -> {target}")
    assert seen, "no internal links found"
    assert not bad, f"{len(bad)} internal links do not resolve: {bad[:5]}"


@pytest.mark.parametrize("query", ["优势", "advantage"])
def test_search_finds(server, browser, query):
    page = _open(browser, server + "index.html")
    try:
        page.fill("input.md-search__input", query, timeout=10_000)
        page.wait_for_selector(".md-search-result__item", timeout=30_000)
        hits = page.eval_on_selector_all(".md-search-result__item", "xs => xs.length")
        assert hits > 0, f"search for {query!r} found nothing"
        assert not page.problems, "; ".join(page.problems[:5])
    finally:
        page.close()


def test_chinese_renders_with_real_glyphs(server, browser, tmp_path):
    """Draw two CJK characters and a private-use code point (always an empty box) in the page's font:
    with a CJK font the three images differ; without one all three are the same box."""
    page = _open(browser, server + "glossary.html")
    try:
        assert "优势" in page.inner_text("article"), "the glossary page lacks the Chinese terms"
        same = page.evaluate(
            """() => {
              const font = '32px ' + getComputedStyle(document.querySelector('article')).fontFamily;
              const draw = ch => { const c = document.createElement('canvas'); c.width = c.height = 48;
                const x = c.getContext('2d'); x.font = font; x.fillText(ch, 4, 36); return c.toDataURL(); };
              const tofu = draw('\\uE000');
              return { you: draw('优') === tofu, shi: draw('势') === tofu, pair: draw('优') === draw('势') };
            }"""
        )
        page.screenshot(path=str(tmp_path / "glossary.png"))
        assert not any(same.values()), (
            f"Chinese characters are drawn as empty boxes ({same}); install a CJK font "
            "(Debian: fonts-noto-cjk, which make browser-deps installs)"
        )
    finally:
        page.close()
