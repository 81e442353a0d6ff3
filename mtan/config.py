"""The configuration of one training run: a frozen dataclass, its presets, and its checks.

Presets (docs/design.md, "Training"):
- ``paper``: Liu et al. 2019 on CityScapes, 128x256, SegNet-MTAN width 1, batch 8, 200 epochs,
  Adam 1e-4, no weight decay, StepLR(100, 0.5), xavier init.
- ``report``: the seed report, reduced SegNet (``segnet-basic``), 100 epochs, weight decay 1e-4,
  StepLR(25, 0.5), He init, batch 8.
- ``cpu``: the default, sized so that an epoch on the synthetic set takes seconds on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mtan.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run; flat, so it maps one to one onto a Tune config."""

    preset: str = "cpu"
    data_root: str | None = None
    labels: int = 7
    image_height: int = 64
    image_width: int = 128
    # None: MTAN on every task of `mtan.tasks`; a task's name: the single-task network of that task alone
    # (the paper's "One Task" baseline, `mtan.model.SingleTaskSegNet`).
    single_task: str | None = None
    backbone: str = "segnet"
    width: float = 0.25
    init: str = "xavier"
    weighting: str = "equal"
    temperature: float = 2.0
    depth_share: float = 0.5
    lr: float = 2e-3
    weight_decay: float = 0.0
    step_size: int = 4
    gamma: float = 0.5
    epochs: int = 8
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    amp: bool = False  # bf16 autocast of forward and loss (GPU speed; not the paper's float32 math)
    compile: bool = False  # torch.compile the network (same math; pays a compile at the start)
    max_train_images: int | None = 192
    max_val_images: int | None = 64

    def to_flat(self) -> dict[str, Any]:
        """The config as a flat JSON-ready dict (the inverse of `config_from_flat`)."""
        return dataclasses.asdict(self)


_PAPER = TrainConfig(
    preset="paper",
    image_height=128,
    image_width=256,
    backbone="segnet",
    width=1.0,
    init="xavier",
    lr=1e-4,
    weight_decay=0.0,
    step_size=100,
    gamma=0.5,
    epochs=200,
    batch_size=8,
    max_train_images=None,
    max_val_images=None,
)
# The seed report: the paper's setup with these changes.
_REPORT = dataclasses.replace(
    _PAPER,
    preset="report",
    backbone="segnet-basic",
    init="kaiming",
    weighting="dwa",
    weight_decay=1e-4,
    step_size=25,
    epochs=100,
)
PRESETS: dict[str, TrainConfig] = {"cpu": TrainConfig(), "paper": _PAPER, "report": _REPORT}

_FIELDS = {field.name for field in dataclasses.fields(TrainConfig)}
_INITS = ("xavier", "kaiming")
_DEVICES = ("auto", "cpu", "cuda")
# 4x the paper's channel widths: 2048 channels at the bottom, about 16x its 41 M parameters.
MAX_WIDTH = 4.0
_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    tuple: "a list",
    type(None): "null",
}


def make_config(preset: str = "cpu", **overrides: Any) -> TrainConfig:
    """A preset with some fields replaced, checked; `ConfigError` names the bad field."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    config = dataclasses.replace(PRESETS[preset], **overrides)
    validate(config)
    return config


def config_from_flat(flat: Mapping[str, Any]) -> TrainConfig:
    """A config from a flat dict such as Tune's: ``preset`` picks the base, other keys override it."""
    values = dict(flat)
    return make_config(values.pop("preset", "cpu"), **values)


def _has_type(value: Any, kind: Any) -> bool:
    """`isinstance` as JSON sees it: an int is a float, but a bool is neither an int nor a float."""
    kind = typing.get_origin(kind) or kind  # tuple[str, ...] -> tuple
    if kind is Any:
        return True
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if kind is float else kind)


def check_field_types(instance: Any, label: Callable[[str], str] = str) -> None:
    """Raise `ConfigError` for the first field of the dataclass `instance` whose value is not of its
    declared type, or for a float field that is not finite (NaN or infinite); `label(name)` is how the
    message names a field (e.g. as its command-line flag)."""
    for name, hint in typing.get_type_hints(type(instance)).items():
        value = getattr(instance, name)
        kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if not any(_has_type(value, kind) for kind in kinds):
            expected = " or ".join(_TYPE_NAMES[typing.get_origin(kind) or kind] for kind in kinds)
            raise ConfigError(f"{label(name)} must be {expected}, got {value!r}")
        if float in kinds and value is not None and not math.isfinite(value):
            raise ConfigError(f"{label(name)} must be a finite number, got {value}")


def validate(config: TrainConfig) -> None:
    """Raise `ConfigError` for the first value of a wrong type, not finite, outside its allowed range or
    an unknown name: the one place where every field is checked."""
    from mtan.model import BACKBONES
    from mtan.tasks import TASKS
    from mtan.weighting import WEIGHTINGS, hyperparameters

    check_field_types(config)
    checks: list[tuple[bool, str]] = [
        (
            config.single_task is None or config.single_task in TASKS,
            f"unknown single task {config.single_task!r}; choose one of {', '.join(TASKS)}",
        ),
        (
            config.backbone in BACKBONES,
            f"unknown backbone {config.backbone!r}; choose one of {', '.join(BACKBONES)}",
        ),
        (
            config.weighting in WEIGHTINGS,
            f"unknown weighting {config.weighting!r}; choose one of {', '.join(WEIGHTINGS)}",
        ),
        (config.init in _INITS, f"unknown init {config.init!r}; choose one of {', '.join(_INITS)}"),
        (config.device in _DEVICES, f"unknown device {config.device!r}; choose one of {', '.join(_DEVICES)}"),
        (config.labels in (7, 19), f"labels must be 7 or 19, got {config.labels}"),
        (config.lr > 0, f"lr must be > 0, got {config.lr}"),
        (config.weight_decay >= 0, f"weight decay must be >= 0, got {config.weight_decay}"),
        (config.step_size >= 1, f"step size must be >= 1, got {config.step_size}"),
        (0 < config.gamma <= 1, f"gamma must be in (0, 1], got {config.gamma}"),
        (config.epochs >= 1, f"epochs must be >= 1, got {config.epochs}"),
        (config.batch_size >= 1, f"batch size must be >= 1, got {config.batch_size}"),
        (0 < config.width <= MAX_WIDTH, f"width must be in (0, {MAX_WIDTH:g}], got {config.width}"),
        (
            config.image_height % 32 == 0
            and config.image_width % 32 == 0
            and config.image_height > 0
            and config.image_width > 0,
            f"image size must be a positive multiple of 32 (five 2x poolings), "
            f"got {config.image_height}x{config.image_width}",
        ),
        (config.num_threads is None or config.num_threads >= 1, "num threads must be >= 1"),
        (
            config.max_train_images is None or config.max_train_images >= 1,
            "max train images must be >= 1",
        ),
        (config.max_val_images is None or config.max_val_images >= 1, "max val images must be >= 1"),
    ]
    for hyperparameter in hyperparameters().values():  # each weighting method's, as it declares them
        problem = hyperparameter.check(getattr(config, hyperparameter.name))
        checks.append((problem is None, problem or ""))
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``128x256``) into (height, width)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ConfigError(f"--size must be HEIGHTxWIDTH with positive integers, e.g. 128x256; got {text!r}")
    return int(match.group(1)), int(match.group(2))
