"""The torch device of a run or an evaluation: ``auto`` (a GPU when one is visible), ``cpu`` or ``cuda``."""

from __future__ import annotations

import torch

from mtan.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when a GPU is visible, else the CPU; `cuda` without a GPU is a `ConfigError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda given, but no CUDA GPU is visible")
    return torch.device(name)
