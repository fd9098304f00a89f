"""Loading a causal LM and its tokenizer by name, folder or hub id (chapter 05): :func:`load_model`.

Re-exported by :mod:`rlcourse.lm.model` (``from rlcourse.lm.model import load_model`` keeps working).
A shipped name or a local folder is checked before transformers reads it (manifest sha256, complete
safetensors, tokenizer files present; see :mod:`rlcourse.lm.files`), so a broken folder is reported by
file name with how to rebuild it. A hub id is looked up in the local cache first; when it is not there
and the hub cannot be reached, the answer comes in about a second (not after ~25 s of HTTP retries).

Public API
----------
- ``load_model(name_or_path="arithmetic", device=None) -> (model, tokenizer)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlcourse.lm.files import (
    MANIFEST,
    SHIPPED,
    check_model_folder,
    data_dir,
    hub_unreachable,
    offline,
    quiet_progress,
    verify_manifest,
)


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else (``./x``, ``/x``, ``a/b/c``, ``~``) is a path."""
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or (os.sep != "/" and os.sep in name)
    )


def _offline() -> bool:  # kept for code that imported it from here
    return offline()


def _not_found(name: str, reason: str, fix: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name!r} is not a shipped model ({', '.join(SHIPPED)}) and does not exist as a local folder, "
        f"and the Hugging Face hub cannot be reached ({reason}). Pass a local folder, or {fix}."
    )


def _resolve(name_or_path: str | Path) -> tuple[str, bool]:
    """Return ``(where, is_local)``, checking local folders and raising clear errors for missing paths."""
    name = str(name_or_path)
    if name in SHIPPED:
        folder = data_dir() / name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"the shipped model {name!r} is missing from {folder}; rebuild it with `make data`"
            )
        verify_manifest(folder)
        check_model_folder(folder)
        return str(folder), True
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / MANIFEST).is_file():
            verify_manifest(path)
        check_model_folder(path)
        return str(path), True
    if path.exists():
        raise ValueError(f"{path} is a file; pass the folder that holds config.json and the weights")
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise FileNotFoundError(
            f"model folder {path} does not exist; pass a shipped name ({', '.join(SHIPPED)}), "
            "an existing Hugging Face model folder, or a hub id"
        )
    if offline():
        raise _not_found(
            name,
            "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set",
            "unset the offline flag on a connected machine",
        )
    return name, False


def _from_hub(name: str):
    """A hub id: the local Hugging Face cache first; else, if the hub answers, a download."""
    try:
        return (
            AutoModelForCausalLM.from_pretrained(name, local_files_only=True),
            AutoTokenizer.from_pretrained(name, local_files_only=True),
        )
    except (OSError, ValueError):
        pass  # not cached: go online
    reason = hub_unreachable()
    if reason is not None:  # answer in ~1 s instead of ~25 s of HTTP retries
        raise _not_found(name, f"no network: {reason}", "connect this machine to the internet and retry")
    try:
        return AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise FileNotFoundError(
            f"{name!r} does not exist as a local folder and could not be fetched from the Hugging Face hub "
            f"(no network, or no such model): {err}. Pass a shipped name ({', '.join(SHIPPED)}) or a local folder."
        ) from err


def load_model(name_or_path: str | Path = "arithmetic", device: torch.device | str | None = None):
    """Load a causal LM and its tokenizer: ``model, tokenizer = load_model("arithmetic", device)``.

    Args:
        name_or_path: a shipped name (``"arithmetic"``, ``"reviews"``; files checked against the manifest's
            sha256), a local Hugging Face model folder (checked too if it has a ``manifest.json``), or a hub
            id such as ``"gpt2"`` (from the local cache, else downloaded; an offline machine is told at once).
        device: where to put the model (default: the CPU).

    Returns:
        ``(model, tokenizer)``: the model in ``eval()`` mode; the tokenizer with ``padding_side="left"`` and
        a pad token (a foreign tokenizer without one gets its eos as pad, with a warning about #35352).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the missing or damaged file (and how to rebuild it).
    """
    where, local = _resolve(name_or_path)
    if local:
        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(where)
            tokenizer = AutoTokenizer.from_pretrained(where)
    else:
        model, tokenizer = _from_hub(where)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        warnings.warn(
            f"{where}: the tokenizer has no pad token; using its eos token as pad. Masks, not token ids, "
            "mark padding everywhere in rlcourse, but beware of code that finds the end by searching for "
            "the pad id (transformers #35352).",
            stacklevel=2,
        )
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device if device is not None else "cpu")
    model.eval()
    return model, tokenizer
