"""Sliders for the notebooks: ``interact`` with the same signature as ``ipywidgets.interact``.

Every slider in the course goes through this module, so that headless execution (nbmake,
papermill, nbconvert) and static views behave the same way in every chapter.
"""

from __future__ import annotations

from typing import Any


def interact(fn: Any = None, **kwargs: Any) -> Any:
    """``ipywidgets.interact(fn, **kwargs)``; see the module docstring."""
    from ipywidgets import interact as _interact

    if fn is None:
        return _interact(**kwargs)
    return _interact(fn, **kwargs)
