"""Checkpoints of a training run: written atomically, loaded without unpickling arbitrary objects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtan.files import atomic_write_bytes


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """`torch.save` a state dict to `path` atomically."""
    atomic_write_bytes(path, lambda file: torch.save(dict(state), file))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)
