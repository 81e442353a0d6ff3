"""Atomic writes of checkpoints and result files: write to a temporary file, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def _read_umask() -> int:
    """The process's umask. Reading it means setting it, so this runs once, at import, before any thread
    of this process writes files (a later os.umask(0) would race with threads creating files)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files are created with this mode, as `open` creates them (0644 under the usual umask 022); `mkstemp`
# alone would leave them 0600, unreadable by a colleague on shared storage.
FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it onto `path` (creating its
    folder if need be); the file gets `FILE_MODE`, as the umask says."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
    """Load a checkpoint written by `save_checkpoint` without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)
