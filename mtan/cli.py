"""What the project's command lines share: the parser with `--version`, the type a dataclass field's flag
parses, and help texts that show each preset's default."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import mtan
from mtan.config import PRESETS, TrainConfig

DISTRIBUTION = "mtan-study"  # the name in pyproject.toml


def installed_version() -> str:
    """The installed distribution's version, or the package's own when it is not installed (a bare clone)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return mtan.__version__


def command_parser(module: str, description: str) -> argparse.ArgumentParser:
    """The parser of the command `python -m MODULE`, with `--version` (prints `PROG VERSION` and exits)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    return parser


def flag_type(owner: type, name: str) -> type:
    """The type the flag of the dataclass `owner`'s field `name` parses: the field's type, the type beside
    None for an optional one (`int` for ``int | None``)."""
    hint = typing.get_type_hints(owner)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(kind for kind in typing.get_args(hint) if kind is not type(None))
    return hint


def preset_defaults(value: Callable[[TrainConfig], Any] | str) -> str:
    """`(default: cpu 8, paper 200, report 100)`, or `(default: 8)` where the presets agree: a config
    value of every preset, the field named by `value` or what `value(config)` gives; None reads as `all`
    (no image limit)."""
    get = (lambda config: getattr(config, value)) if isinstance(value, str) else value
    shown = {name: "all" if get(config) is None else str(get(config)) for name, config in PRESETS.items()}
    if len(set(shown.values())) == 1:
        return f"(default: {next(iter(shown.values()))})"
    return f"(default: {', '.join(f'{name} {text}' for name, text in shown.items())})"
