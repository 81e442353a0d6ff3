"""A study's settings: their defaults by preset, their checks, and their JSON form (study.json)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mtan.config import make_config
from mtan.errors import UserError
from mtan.metrics import HIGHER_IS_BETTER, METRIC_KEYS
from study.space import SearchSpace
from study.trainable import DEFAULT_CHECKPOINT_EVERY, TrialSettings

DEFAULT_NUM_SAMPLES = 20
DEFAULT_STORAGE = "./results"
DEFAULT_METRIC = "score"
DEFAULT_REDUCTION_FACTOR = 4
DEFAULT_MAX_FAILURES = 2
# A study's name is its folder's: a plain name (no path, not hidden, not . or ..) that is safe in a shell,
# a URI and on every file system.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")


@dataclass(frozen=True)
class PresetDefaults:
    """A study's defaults for one preset where they differ from the preset's own (epochs, data size)."""

    max_epochs: int
    overrides: tuple[tuple[str, Any], ...] = ()


# The cpu preset's study must run 20 trials in 5 minutes on 2 cores, Ray's start included, and an epoch of
# the full cpu preset (192 images of 64x128) costs about 17 CPU seconds on one thread. So the study's
# default trains the cpu preset's network on 64 images of 32x64 (about 2 CPU seconds an epoch), validating
# on 32, for up to 24 epochs; `--set image_height=64 ...` undoes any of it. Other presets: their own epochs
# and all their data. docs/study.md, "Budget on a CPU", has the figures.
PRESET_DEFAULTS: dict[str, PresetDefaults] = {
    "cpu": PresetDefaults(
        max_epochs=24,
        overrides=(
            ("image_height", 32),
            ("image_width", 64),
            ("max_train_images", 64),
            ("max_val_images", 32),
        ),
    ),
}
# DWA weights every task 1 in its first two epochs, so before the end of epoch 3 a DWA trial trains as
# it would with equal weighting: ASHA may not judge a trial before then.
MIN_GRACE_PERIOD = 3
# `--set` cannot change what the study itself decides: these have their own flags; the fields of the search
# space (`SearchSpace.fields`) are searched.
FLAG_FIELDS: tuple[str, ...] = ("preset", "data_root", "epochs", "seed", "device", "num_threads")


@dataclass(frozen=True)
class StudySettings:
    """Everything that defines a study; recorded in study.json and reused by ``--resume``."""

    name: str
    storage_path: str = DEFAULT_STORAGE
    num_samples: int = DEFAULT_NUM_SAMPLES
    preset: str = "cpu"
    data_root: str | None = None
    max_epochs: int = PRESET_DEFAULTS["cpu"].max_epochs
    grace_period: int = MIN_GRACE_PERIOD
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR
    metric: str = DEFAULT_METRIC
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None
    max_failures: int = DEFAULT_MAX_FAILURES
    seed: int = 0
    uncertainty: bool = False
    tune_lr: bool = False
    overrides: tuple[tuple[str, Any], ...] = ()
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY

    @property
    def mode(self) -> str:
        """``max`` or ``min``, from the metric."""
        return "max" if HIGHER_IS_BETTER[self.metric] else "min"

    @property
    def space(self) -> SearchSpace:
        """The search space of this study."""
        return SearchSpace(uncertainty=self.uncertainty, tune_lr=self.tune_lr)

    def trial_settings(self) -> TrialSettings:
        """What the trials of this study share."""
        return TrialSettings(
            preset=self.preset,
            data_root=self.data_root,
            max_epochs=self.max_epochs,
            seed=self.seed,
            device="cuda" if self.gpus_per_trial > 0 else "cpu",
            num_threads=max(1, math.floor(self.cpus_per_trial)),
            overrides=self.overrides,
            checkpoint_every=self.checkpoint_every,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON object (overrides as an object)."""
        values = dataclasses.asdict(self)
        values["overrides"] = dict(self.overrides)
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> StudySettings:
        """The inverse of `to_json`."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs["overrides"] = tuple(sorted(dict(values.get("overrides") or {}).items()))
        return cls(**kwargs)


def validate(settings: StudySettings) -> None:
    """Raise `UserError` naming the flag when a setting is out of range."""
    checks = [
        (settings.num_samples >= 1, f"--num-samples must be at least 1, got {settings.num_samples}"),
        (settings.max_epochs >= 1, f"--max-epochs must be at least 1, got {settings.max_epochs}"),
        (
            1 <= settings.grace_period <= settings.max_epochs,
            f"--grace-period must be between 1 and --max-epochs ({settings.max_epochs}), "
            f"got {settings.grace_period}",
        ),
        (
            settings.reduction_factor >= 2,
            f"--reduction-factor must be at least 2, got {settings.reduction_factor}",
        ),
        (settings.gpus_per_trial >= 0, f"--gpus-per-trial must be 0 or more, got {settings.gpus_per_trial}"),
        (settings.cpus_per_trial > 0, f"--cpus-per-trial must be more than 0, got {settings.cpus_per_trial}"),
        (
            settings.max_concurrent is None or settings.max_concurrent >= 1,
            f"--max-concurrent must be at least 1, got {settings.max_concurrent}",
        ),
        (settings.max_failures >= 0, f"--max-failures must be 0 or more, got {settings.max_failures}"),
        (
            settings.metric in METRIC_KEYS,
            f"--metric must be one of {', '.join(METRIC_KEYS)}, got {settings.metric}",
        ),
        (
            settings.checkpoint_every >= 1,
            f"--checkpoint-every must be at least 1, got {settings.checkpoint_every}",
        ),
        (
            NAME_PATTERN.fullmatch(settings.name) is not None,
            f"--name must be a plain folder name of at most 100 letters, digits and . _ + - (not starting "
            f"with a dot), got {settings.name[:120]!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    fixed = sorted(set(dict(settings.overrides)) & set(FLAG_FIELDS))
    if fixed:
        raise UserError(f"--set cannot change {', '.join(fixed)}: the study sets it (see --help)")
    searched = sorted(set(dict(settings.overrides)) & set(settings.space.fields))
    if searched:
        raise UserError(
            f"--set cannot change {', '.join(searched)}: the study searches it (a value is either fixed or "
            "searched; see --help)"
        )
    settings.trial_settings().base_config()  # ConfigError (a UserError) for a bad preset or --set


def preset_epochs(preset: str) -> int:
    """The preset's own epoch budget."""
    return make_config(preset).epochs
