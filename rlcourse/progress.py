"""Progress bars (chapter 00): every training loop that runs longer than ~2 s shows one in a notebook."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], show: bool = True, desc: str | None = None, **kwargs) -> Iterable[T]:
    """``tqdm.auto.tqdm(iterable, desc=desc, leave=False)`` when ``show``, else ``iterable`` unchanged.

    ``tqdm.auto`` draws a widget bar in JupyterLab and a text bar in a terminal.
    """
    if not show:
        return iterable
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    return tqdm(iterable, desc=desc, **kwargs)
