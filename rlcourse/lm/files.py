"""Model folders on disk: manifests, checks that name the broken file, atomic saves (chapter 05).

A model folder (``data/arithmetic``, a saved reward model, ...) holds ``config.json``, the weights in
``model.safetensors``, the tokenizer files and ``manifest.json`` (the sha256 of every other file plus
training metadata). This module is what :func:`rlcourse.lm.model.load_model` and every
``save_pretrained`` in ``rlcourse`` stand on:

- reading: :func:`verify_manifest`, :func:`check_model_folder` -- a missing tokenizer, a corrupted or
  truncated ``.safetensors`` file or a ``manifest.json`` that is not JSON is reported with the file's
  path and how to rebuild it (``make data``), never only as a safetensors/JSON parser message;
- hub ids: :func:`hub_unreachable` answers in about a second on an offline machine (instead of ~25 s of
  HTTP retries), so :func:`~rlcourse.lm.model.load_model` can say at once that the hub cannot be reached;
- writing: :func:`save_folder` converts the metadata to JSON types first (refusing what has no JSON
  form before a single file is written), writes everything into a temporary folder beside the target
  and renames it into place (``rlcourse.checks.atomic_dir``): an interrupted save leaves the previous
  checkpoint intact and loadable.

Public API
----------
- ``data_dir() -> Path``, ``shipped_models() -> list[str]``, ``SHIPPED``, ``MANIFEST``.
- ``write_manifest(folder, **info) -> dict``, ``verify_manifest(folder) -> dict``, ``read_manifest(name_or_path)``.
- ``check_model_folder(folder, need_tokenizer=True)``, ``check_safetensors(path)``, ``read_json(path)``.
- ``save_folder(folder, write, **info) -> dict``: ``write(tmp_folder)`` writes the files, then the manifest.
- ``save_model(model, folder, tokenizer=None, **info) -> dict``: a Hugging Face model, saved atomically.
- ``hub_unreachable(timeout=2.0) -> str | None``, ``offline() -> bool``, ``quiet_progress()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from rlcourse.checks import atomic_dir, json_ready

SHIPPED = ("arithmetic", "reviews")
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
REBUILD = "rebuild it with `make data` (a shipped model) or save the model there again"


def data_dir() -> Path:
    """Folder of the shipped models: ``$RLCOURSE_DATA`` if set, else ``data/`` at the repository root."""
    env = os.environ.get("RLCOURSE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def shipped_models() -> list[str]:
    """Names :func:`~rlcourse.lm.model.load_model` accepts without a path."""
    return list(SHIPPED)


# ----------------------------------------------------------------------------------------- reading


def read_json(path: str | Path) -> dict:
    """``json.loads`` of a file that must hold a JSON object; a broken file is named in a ``ValueError``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON (the file is damaged or truncated); {REBUILD}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object, found a {type(data).__name__}; {REBUILD}")
    return data


def check_safetensors(path: str | Path) -> None:
    """Raise ``ValueError`` naming ``path`` unless it is a complete safetensors file (header and data).

    Reads only the header: 8 bytes of length, a JSON table of tensors and their byte ranges; the file
    must be exactly as long as the table says (a truncated download or copy is shorter).
    """
    path = Path(path)
    size = path.stat().st_size
    problem = None
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if n is None or n > size - 8:
            problem = "its header is cut off or unreadable"
        else:
            try:
                table = json.loads(f.read(n))
                end = max((v["data_offsets"][1] for k, v in table.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
                problem = "its header is not a safetensors header"
            else:
                if 8 + n + end != size:
                    problem = f"it holds {size} bytes where its header announces {8 + n + end} (truncated)"
    if problem:
        raise ValueError(f"{path} is corrupted or truncated: {problem}; {REBUILD}")


def check_model_folder(folder: str | Path, need_tokenizer: bool = True) -> None:
    """Check that ``folder`` holds a loadable model: ``config.json`` (valid JSON), complete weights, a tokenizer.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a damaged one; both name the file.
    """
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{config} is missing: {folder} is not a saved model folder; {REBUILD}")
    read_json(config)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("*.bin")):
        raise FileNotFoundError(f"{folder} has no weights (model.safetensors); {REBUILD}")
    for w in weights:
        check_safetensors(w)
    if need_tokenizer and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}); save them with "
            f"tokenizer.save_pretrained({str(folder)!r}), or {REBUILD}"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: str | Path, **info) -> dict:
    """Write ``folder/manifest.json``: the sha256 of every other file in ``folder`` plus ``info`` (JSON-able).

    Returns the manifest as a dict. Keys are sorted so a rebuild gives byte-identical manifests.
    ``info`` is checked with ``rlcourse.checks.json_ready`` before the file is written.
    """
    folder = Path(folder)
    info = json_ready(info, "info")
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {"files": files, **info}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def verify_manifest(folder: str | Path) -> dict:
    """Check every file listed in ``folder/manifest.json`` against its sha256; return the manifest.

    Raises ``FileNotFoundError`` if the manifest or a listed file is missing and ``ValueError`` if the
    manifest is not valid JSON or a file's hash differs (all say to rebuild with ``make data``).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild the shipped models with `make data`")
    manifest = read_json(path)
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise ValueError(f"{path}: 'files' should map file names to sha256 digests; {REBUILD}")
    for name, digest in files.items():
        f = folder / name
        if not f.is_file():
            raise FileNotFoundError(f"{f} is listed in {path} but missing; rebuild with `make data`")
        if _sha256(f) != digest:
            raise ValueError(
                f"{f} is corrupted (its sha256 does not match {path}); rebuild with `make data` "
                "(or restore it with `git checkout data/`)"
            )
    return manifest


def read_manifest(name_or_path: str | Path) -> dict:
    """The manifest of a shipped model (``"arithmetic"``) or of a folder, without loading the model."""
    folder = data_dir() / str(name_or_path) if str(name_or_path) in SHIPPED else Path(name_or_path)
    return verify_manifest(folder)


# ----------------------------------------------------------------------------------------- writing


def _refuse_foreign_folder(folder: Path) -> None:
    """An atomic save replaces ``folder`` as a whole: refuse a non-empty folder that is not a saved model."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; pass a folder path to save the model into")
    if folder.is_dir() and any(folder.iterdir()):
        if not ((folder / "config.json").is_file() or (folder / MANIFEST).is_file()):
            raise FileExistsError(
                f"{folder} exists and holds files that are not a saved model; saving replaces the whole "
                "folder, so pick a new (or empty) folder, e.g. a subfolder of it"
            )


def save_folder(folder: str | Path, write: Callable[[Path], None], **info) -> dict:
    """Atomically save a model folder: ``write(tmp)`` writes the files, then ``manifest.json`` records them.

    ``info`` (manifest metadata) is converted to JSON types first -- a value with no JSON form raises
    ``TypeError`` before any file is written. Everything is written into a temporary folder beside
    ``folder``, which replaces ``folder`` only when complete; if anything fails (or Ctrl-C), ``folder``
    is left exactly as it was. Returns the manifest.
    """
    folder = Path(folder)
    info = json_ready(info, "info")
    _refuse_foreign_folder(folder)
    with atomic_dir(folder) as tmp:
        write(tmp)
        manifest = write_manifest(tmp, **info)
    return manifest


def save_model(model, folder: str | Path, tokenizer=None, **info) -> dict:
    """Atomically save a Hugging Face ``model`` (and ``tokenizer``) with a manifest holding ``info``.

    The atomic counterpart of ``model.save_pretrained(folder)``: a failure at any point leaves a previous
    model in ``folder`` intact. Returns the manifest.
    """

    def write(tmp: Path) -> None:
        with quiet_progress():
            model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    return save_folder(folder, write, **info)


# ----------------------------------------------------------------------------------------- hub


@contextlib.contextmanager
def quiet_progress():
    """Silence transformers' per-file progress bars ("Loading weights", "Writing model shards") for tiny models."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def offline() -> bool:
    """True if ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except (ImportError, AttributeError):  # pragma: no cover - huggingface_hub ships with transformers
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_unreachable(timeout: float = 2.0) -> str | None:
    """Why the Hugging Face hub cannot be reached (a short reason), or None if a TCP connection opens.

    A name lookup and a connection to the hub's endpoint, given ``timeout`` seconds in all, so an
    offline machine gets an answer at once instead of ~25 s of HTTP retries. Behind a proxy
    (``HTTPS_PROXY``/``ALL_PROXY`` set) a direct connection says nothing, so it answers None.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(_hub_endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as err:
            result.append(f"cannot connect to {host}:{port} ({err})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"no answer from {host}:{port} within {timeout:g} s"
