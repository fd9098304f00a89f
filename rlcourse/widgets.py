"""Sliders for the notebooks: ``interact`` with the same signature as ``ipywidgets.interact``.

    from rlcourse.widgets import interact
    interact(plot_clip, eps=FloatSlider(value=0.2, min=0.05, max=0.5, step=0.05))  # or eps=(0.05, 0.5, 0.05)

Every slider in the course goes through this function, so that each chapter behaves the same way:

- **In JupyterLab** (a live widget frontend) it is ``ipywidgets.interact``: the slider, and under it
  the figure, drawn once at the start and once per change.
- **Executed headless** (nbmake, papermill, nbconvert, ``jupyter execute``: anything built on
  nbclient), **in plain Python**, or with ``RLCOURSE_WIDGETS=static``, it creates no widget at all:
  it calls the function once with the slider's starting values, so the figure is drawn once, after
  a one-line caption that names those values. Static views (HTML exports, GitHub, the course
  website) show that figure.

Why not always the widget: executed by nbclient, every output that an ``Output`` widget (the area
under an ``interact`` slider) captures makes nbclient send a comm message to the kernel's shell
socket, while the kernel is busy replying to the cell. ipykernel 7.0-7.3 sends its replies raw on
that same socket, which can swallow the wake-up of a message arriving at that moment: the message,
and every request behind it, is never read; the kernel sits idle and the client waits forever
(jupyter/nbclient#312, nteract/papermill#723; ipykernel 7.4 sends replies through the socket's
stream instead, ipython/ipykernel#1529). Without widgets nbclient sends nothing while a cell runs,
so this cannot happen with any ipykernel. ``tools/stress_headless.py`` measures it (``--kernel``
runs an older ipykernel).

How a live frontend is recognised (:func:`widget_frontend`): ``RLCOURSE_WIDGETS=live`` or
``static`` decides; otherwise a kernel counts as live when a frontend has opened ipywidgets' control
comm, or when the running cell's execute request allows ``input()`` (``allow_stdin``): JupyterLab,
Notebook 7 and VS Code send ``True``; nbclient and nbval send ``False``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from numbers import Integral, Real
from typing import Any

MODE_ENV = "RLCOURSE_WIDGETS"
_MODES = ("auto", "live", "static")
_EMPTY = inspect.Parameter.empty


def widget_frontend() -> bool:
    """True when a live widget frontend will show a slider for the cell that is running now."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(
            f"{MODE_ENV}={os.environ[MODE_ENV]!r} is not one of {', '.join(_MODES)}; unset it (auto: live in "
            "JupyterLab, static when executed headless) or set it to 'live' or 'static'"
        )
    if mode != "auto":
        return mode == "live"
    kernel = _kernel()
    if kernel is None:
        return False  # plain Python or terminal IPython: nothing can show a widget
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None and getattr(widgets.Widget, "_control_comm", None) is not None:
        return True  # a widget manager (JupyterLab, Voila, ...) opened ipywidgets' control comm
    try:
        parent = kernel.get_parent()
    except (AttributeError, TypeError):  # ipykernel < 6
        parent = getattr(kernel, "_parent_header", {}) or {}
    content = parent.get("content", {}) if isinstance(parent, Mapping) else {}
    return bool(content.get("allow_stdin", False))


def _kernel() -> Any | None:
    """The running ipykernel, or None outside a Jupyter kernel."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return getattr(shell, "kernel", None)


def interact(fn: Callable[..., Any] | None = None, /, **kwargs: Any) -> Any:
    """Show ``fn`` with one slider (or other control) per keyword argument; returns ``fn``.

    Same call as ``ipywidgets.interact``: ``kwargs`` maps ``fn``'s argument names to widgets
    (``FloatSlider(...)``) or abbreviations (``(min, max)``, ``(min, max, step)``, a list of options, a
    number, a bool, a string, ``ipywidgets.fixed(x)``); arguments of ``fn`` with a default and no
    entry in ``kwargs`` get a control made from the default. ``interact(**kwargs)`` with no function
    returns a decorator. See the module docstring for what is shown where.

    Raises ``TypeError`` when ``fn`` is not callable or has no argument of a given name, and
    ``ValueError`` when a value cannot be made into a control.
    """
    if fn is None:
        return functools.partial(interact, **kwargs)
    if not callable(fn):
        raise TypeError(
            f"interact: fn must be a function (e.g. interact(plot_clip, eps=(0.05, 0.5))), got {fn!r}"
        )
    values = initial_values(fn, kwargs)  # checks every name and abbreviation in both modes
    if widget_frontend():
        return _interact_live(fn, kwargs)
    _draw_static(fn, values)
    return fn


def initial_values(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The values ``ipywidgets.interact(fn, **kwargs)`` would call ``fn`` with first; creates no widget."""
    remaining = dict(kwargs)
    values: dict[str, Any] = {}
    name = getattr(fn, "__name__", repr(fn))
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature (some builtins): use kwargs only, like ipywidgets
        return {k: _initial_value(k, v, _EMPTY) for k, v in remaining.items()}
    for p in params:
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            if p.name in remaining:
                values[p.name] = _initial_value(p.name, remaining.pop(p.name), p.default)
            elif p.default is not _EMPTY:
                values[p.name] = _initial_value(p.name, p.default, p.default)
            elif p.annotation is not _EMPTY:
                values[p.name] = _initial_value(p.name, p.annotation, _EMPTY)
            else:
                raise TypeError(
                    f"interact: argument {p.name!r} of {name}() has no control: pass one, e.g. "
                    f"interact({name}, {p.name}=(0.0, 1.0, 0.1)), or give {p.name} a default"
                )
        elif p.kind is p.VAR_KEYWORD:
            values.update({k: _initial_value(k, v, _EMPTY) for k, v in remaining.items()})
            remaining.clear()
    if remaining:
        allowed = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise TypeError(
            f"interact: {name}() has no argument {', '.join(map(repr, remaining))}; its arguments are "
            f"{allowed}: rename the keyword to one of them"
        )
    return values


def _initial_value(name: str, abbrev: Any, default: Any) -> Any:
    """ipywidgets' starting value for one control (``widget_from_abbrev``), computed without widgets."""
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None and isinstance(abbrev, widgets.Widget | widgets.fixed):
        if isinstance(abbrev, widgets.Widget) and not isinstance(abbrev, widgets.ValueWidget):
            raise TypeError(
                f"interact: {name}={abbrev!r} is a widget without a value; pass a slider or similar"
            )
        return abbrev.get_interact_value()
    if isinstance(abbrev, tuple):
        return _from_range(name, abbrev, default)
    if isinstance(abbrev, type):
        found = {str: "", bool: False, int: 0, Integral: 0, float: 0.0, Real: 0.0}
        if abbrev in found:
            return found[abbrev]
        if issubclass(abbrev, Enum) and len(abbrev):
            return next(iter(abbrev))
    if isinstance(abbrev, str | bool | Real):
        return abbrev
    if isinstance(abbrev, Iterable):
        options = _option_values(abbrev)
        if default is not _EMPTY and any(default is v or default == v for v in options):
            return default
        return options[0] if options else None
    raise ValueError(
        f"interact: cannot make a control for {name}={abbrev!r}; pass a widget, a (min, max[, step]) tuple, "
        "a list of options, a number, a bool or a string"
    )


def _from_range(name: str, abbrev: tuple, default: Any) -> Any:
    """A slider's starting value from ``(min, max)`` or ``(min, max, step)`` and the function's default."""
    if len(abbrev) not in (2, 3) or not all(isinstance(x, Real) and not isinstance(x, bool) for x in abbrev):
        raise ValueError(
            f"interact: {name}={abbrev!r} is not a slider range; use (min, max) or (min, max, step) with "
            "numbers, or a list for a drop-down"
        )
    lo, hi = abbrev[0], abbrev[1]
    step = abbrev[2] if len(abbrev) == 3 else None
    if step is not None and step <= 0:
        raise ValueError(f"interact: {name}={abbrev!r} has step {step}; the step must be > 0")
    if not lo <= hi:
        raise ValueError(f"interact: {name}={abbrev!r} has min > max; swap them")
    ints = all(isinstance(x, Integral) for x in abbrev)
    diff = hi - lo
    value = lo + diff // 2 if ints else lo + diff / 2
    if step is not None:
        value = lo + int((value - lo) / step) * step
    if default is not _EMPTY:
        try:
            value = int(default) if ints else float(default)
        except (TypeError, ValueError):
            pass  # ipywidgets ignores a default that does not fit the slider
        value = min(max(value, lo), hi)  # a slider clamps its value into [min, max]
    return value


def _option_values(options: Iterable) -> list[Any]:
    """The values of a drop-down's options, as ``ipywidgets.Dropdown`` reads them."""
    if isinstance(options, Mapping):
        return list(options.values())
    items = list(options)
    if all(isinstance(i, list | tuple) and len(i) == 2 for i in items):
        return [v for _, v in items]
    return items


def _is_figure(x: Any) -> bool:
    figure = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    return figure is not None and isinstance(x, figure)


def _draw_static(fn: Callable[..., Any], values: dict[str, Any]) -> None:
    """Call ``fn`` once with ``values``: its figure is drawn once, after a caption naming the values."""
    from IPython.display import display

    if values:
        display(_Caption(values))
    result = fn(**values)
    if result is not None and not _is_figure(result):
        display(result)  # interact shows a returned value under the figure; so do we


def _interact_live(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``ipywidgets.interact(fn, **kwargs)``, with a returned figure never shown a second time."""
    from ipywidgets import interact as _interact

    @functools.wraps(fn)
    def draw(**values: Any) -> Any:
        result = fn(**values)
        # plt.show() has shown the figure, or interact's flush shows it: displaying a returned
        # figure as well would draw it twice
        return None if _is_figure(result) else result

    shown = _interact(draw, **kwargs)
    try:
        fn.widget = shown.widget  # type: ignore[attr-defined]  # like ipywidgets.interact
    except AttributeError:  # bound methods take no attributes; ipywidgets wraps them in a lambda
        return shown
    return fn


class _Caption:
    """One line above a static figure: the controls' values, and where the slider can be moved."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.text = ", ".join(f"{k} = {_fmt(v)}" for k, v in values.items())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        import html

        note = "static view: run the notebook in JupyterLab to move the slider"
        return {
            "text/plain": f"{self.text}  ({note})",
            "text/html": f"<p><code>{html.escape(self.text)}</code> <small><i>({note})</i></small></p>",
        }

    def __repr__(self) -> str:
        return self._repr_mimebundle_()["text/plain"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return repr(v) if isinstance(v, str) else str(v)
