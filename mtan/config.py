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
from dataclasses import dataclass, field
from typing import Any

from mtan.errors import ConfigError
from mtan.model import BACKBONES, INITS
from mtan.tasks import TASKS
from mtan.weighting import WEIGHTINGS, hyperparameters

LABELS = (7, 19)  # CityScapes' 7 categories or 19 classes
DEVICES = ("auto", "cpu", "cuda")
_HYPERPARAMETERS = hyperparameters()  # each weighting method's, with its default (`mtan.weighting`)


def _flag(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    flag: str | None = None,
    shown: bool = True,
) -> Any:
    """A config field with its flag of ``python -m mtan.train`` (`mtan.train.cli` makes one per field):
    its help text, the values it takes, the flag's name when it is not the field's, and whether the help
    ends with each preset's value (`mtan.cli.preset_defaults`)."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag, "shown": shown})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run; flat, so it maps one to one onto a Tune config.

    Each field is a flag of ``python -m mtan.train``; a weighting method's hyperparameter (`temperature`,
    `depth_share`) takes its default and help from `mtan.weighting`, and `preset`, `image_height` and
    `image_width` are set by ``--preset`` and ``--size``.
    """

    preset: str = "cpu"  # the preset the other values started from
    data_root: str | None = _flag(
        None,
        "MTAN-layout data set (root/{train,val}/{image,label_7,...}) (default: the synthetic set)",
        shown=False,
    )
    labels: int = _flag(7, "7 categories or 19 classes", choices=LABELS)
    image_height: int = 64
    image_width: int = 128
    single_task: str | None = _flag(
        None,
        "train the paper's One Task network on this task alone (the single-task baseline; default: MTAN on "
        "every task)",
        choices=tuple(TASKS),
        shown=False,
    )
    backbone: str = _flag(
        "segnet",
        "segnet: the paper's SegNet; segnet-basic: the seed report's reduced one",
        choices=tuple(BACKBONES),
    )
    width: float = _flag(0.25, "channel width multiplier, 1.0 = the paper's network")
    init: str = _flag("xavier", "convolution weight init", choices=tuple(INITS))
    weighting: str = _flag("equal", "task loss weighting", choices=tuple(WEIGHTINGS))
    temperature: float = _HYPERPARAMETERS["temperature"].default  # DWA's
    depth_share: float = _HYPERPARAMETERS["depth_share"].default  # linear scalarization's
    lr: float = _flag(2e-3, "Adam learning rate")
    weight_decay: float = _flag(0.0, "Adam weight decay, 0 = none")
    step_size: int = _flag(4, "StepLR step size in epochs")
    gamma: float = _flag(0.5, "StepLR decay factor")
    epochs: int = _flag(8, "epochs to train")
    batch_size: int = _flag(8, "images per step")
    seed: int = _flag(0, "seed of the weights' init and the shuffling")
    device: str = _flag("auto", "auto = CUDA when a GPU is visible, else the CPU", choices=DEVICES)
    num_threads: int | None = _flag(
        None, "torch CPU threads (default: torch's own choice)", flag="threads", shown=False
    )
    amp: bool = _flag(
        False,
        "bf16 autocast of forward and loss (for GPUs; not the paper's float32 math; default off)",
        shown=False,
    )
    compile: bool = _flag(
        False,
        "torch.compile the network (for GPUs; the same math after a compile at the start; default off)",
        shown=False,
    )
    max_train_images: int | None = _flag(192, "use only the first N training images")
    max_val_images: int | None = _flag(64, "use only the first N validation images")

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

_FIELDS = {config_field.name for config_field in dataclasses.fields(TrainConfig)}
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
    check_field_types(config)
    checks: list[tuple[bool, str]] = [
        (
            config.single_task is None or config.single_task in TASKS,
            f"unknown single task {config.single_task!r}; choose one of {', '.join(TASKS)}",
        ),
        (
            config.single_task is None or config.weighting == "equal",
            f"single task {config.single_task}: weighting must be equal (one task has one loss), "
            f"got {config.weighting}",
        ),
        (
            config.backbone in BACKBONES,
            f"unknown backbone {config.backbone!r}; choose one of {', '.join(BACKBONES)}",
        ),
        (
            config.weighting in WEIGHTINGS,
            f"unknown weighting {config.weighting!r}; choose one of {', '.join(WEIGHTINGS)}",
        ),
        (config.init in INITS, f"unknown init {config.init!r}; choose one of {', '.join(INITS)}"),
        (config.device in DEVICES, f"unknown device {config.device!r}; choose one of {', '.join(DEVICES)}"),
        (
            config.labels in LABELS,
            f"labels must be {' or '.join(map(str, LABELS))}, got {config.labels}",
        ),
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
