"""Atomic writes of checkpoints and result files: write to a temporary file, then rename.

A write that fails (disk full, read-only disk, a file where a folder should be) raises `UserError` naming
the file and leaves what was there before unchanged; so does a checkpoint that cannot be loaded.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtan.errors import UserError


def _cannot_write(path: Path, error: OSError) -> UserError:
    return UserError(f"cannot write {path}: {error.strerror or error}")


def check_writable_folder(path: Path) -> None:
    """Create the folder `path` if need be and check that a file can be created in it (a read-only disk
    fails here, before anything is written); `UserError` names it otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UserError(f"cannot write into {path}: {error.strerror or error}") from None


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it onto `path` (creating its
    folder if need be)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write_bytes(path, lambda file: file.write(text.encode()))


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write a JSON object to `path` atomically, indented for reading."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """`torch.save` a state dict to `path` atomically."""
    atomic_write_bytes(path, lambda file: torch.save(dict(state), file))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` without unpickling arbitrary objects; `UserError`
    (never torch's message, whose advice to pass ``weights_only=False`` would run the file's code) for
    a file that is empty, truncated, not a torch file or not a dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except Exception:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a bad file
        state = None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a checkpoint of mtan.train (empty, truncated or another format)")
    return state
