"""Checkpoints of a training run: written atomically, loaded without unpickling arbitrary objects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtan.errors import UserError
from mtan.files import atomic_write_bytes


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
