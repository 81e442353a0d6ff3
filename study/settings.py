"""A study's settings: every default in one place, their checks, their flags and their JSON form.

`StudySettings` holds everything that defines a study (its fields are the flags of ``python -m
study.run``, `STUDY_FLAGS`) and the base training configuration of its trials, built once
(`StudySettings.base_config`). `new_settings` fills in the defaults of a new study: the dataclass
defaults, those by preset (`PRESET_DEFAULTS`, else the preset's own epochs), the grace period from the
epochs and the reduction factor, the weighting methods searched (the registry's, the opt-in ones by their
flag), the number of trials from ``--per-weighting`` (that many per weighting method), and one GPU per
trial when Ray sees a GPU (`study.cluster.default_gpus_per_trial`). A resumed study's settings are those
it recorded (`StudySettings.from_study_json`), its weighting methods included.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtan.config import PRESETS, TrainConfig, check_field_types, make_config
from mtan.errors import ConfigError, UserError
from mtan.metrics import HIGHER_IS_BETTER, METRIC_KEYS
from mtan.weighting import WEIGHTINGS
from study.front import parse_objectives
from study.observe.loggers import DEFAULT_LOGGER, LOGGERS, check_logger
from study.search.sampler import DEFAULT_SAMPLER, MULTI_OBJECTIVE_SAMPLERS, SAMPLERS
from study.space import OPT_IN_WEIGHTINGS, WEIGHTING, SearchSpace, new_study_weightings
from study.trainable import DEFAULT_CHECKPOINT_EVERY

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


def _flag(default: Any, help: str, shown: bool = True) -> Any:
    """A settings field that is a flag of ``python -m study.run``; `shown`: its help shows the default."""
    text = f"{help} (default {default})" if shown else help
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class StudySettings:
    """Everything that defines a study; recorded in study.json and reused by ``--resume``."""

    name: str = _flag(
        "", "the study's folder name (default study-YYYYmmdd-HHMMSS; with --resume the latest)", False
    )
    storage_path: str = _flag("./results", "where studies go: a folder or s3://...")
    num_samples: int = _flag(20, "number of trials")
    per_weighting: int | None = _flag(
        None,
        "trials for each weighting method of the space, the same number for each, instead of --num-samples "
        "(it sets the total; docs/study.md)",
        False,
    )
    preset: str = _flag(
        "cpu",
        f"mtan preset, one of {', '.join(PRESETS)}: cpu (default; small, for the synthetic set), report "
        "(the seed report's network), paper (Liu et al. 2019's)",
        False,
    )
    data_root: str | None = _flag(None, "MTAN-format CityScapes root (default: the synthetic set)", False)
    max_epochs: int = _flag(
        PRESET_DEFAULTS["cpu"].max_epochs,
        "epochs of a trial that ASHA never stops (default: "
        + ", ".join(
            f"{p} {PRESET_DEFAULTS[p].max_epochs if p in PRESET_DEFAULTS else PRESETS[p].epochs}"
            for p in PRESETS
        )
        + ")",
        False,
    )
    grace_period: int = _flag(
        MIN_GRACE_PERIOD,
        "epochs before ASHA may stop a trial "
        f"(default max({MIN_GRACE_PERIOD}, max-epochs / reduction-factor^2))",
        False,
    )
    reduction_factor: int = _flag(4, "ASHA's reduction factor")
    metric: str = _flag(
        "score",
        f"the objective, one of {', '.join(METRIC_KEYS)}; with --objectives the score ASHA stops trials on",
    )
    objectives: str | None = _flag(
        None,
        "two or more metrics to optimise together, comma-separated, e.g. miou,abs_err: a multi-objective "
        "study with a Pareto front (docs/study.md)",
        False,
    )
    sampler: str = _flag(
        DEFAULT_SAMPLER,
        f"Optuna's sampler, one of {', '.join(SAMPLERS)} "
        f"({', '.join(MULTI_OBJECTIVE_SAMPLERS)} with --objectives only)",
    )
    gpus_per_trial: float = _flag(
        0.0, "GPUs per trial, fractions allowed (default 1 if a GPU is visible, else 0)", False
    )
    cpus_per_trial: float = _flag(1.0, "CPUs per trial, also torch's threads")
    max_concurrent: int | None = _flag(None, "trials at once (default: as many as fit)", False)
    max_failures: int = _flag(
        2,
        "retries of a failed trial from its last checkpoint: a trial whose node died, and also a diverged "
        "one (it diverges again and ends failed)",
    )
    seed: int = _flag(0, "the sampler's seed; trial n trains with seed + n")
    uncertainty: bool = _flag(False, "also search uncertainty weighting (default: off)", False)
    tune_lr: bool = _flag(False, "also search the learning rate (default: off)", False)
    # The weighting methods searched: a new study's (`study.space.new_study_weightings`, () fills them in
    # from the opt-in flags), then the recorded ones, whatever the registry holds when the study resumes.
    weightings: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()  # further TrainConfig fields (`--set KEY=VALUE`)
    checkpoint_every: int = _flag(
        DEFAULT_CHECKPOINT_EVERY,
        "epochs between a trial's checkpoints: a lost node or driver costs at most this many minus one",
    )
    logger: str = _flag(DEFAULT_LOGGER, f"also log every trial to: {', '.join(LOGGERS)}")
    mlflow_tracking_uri: str | None = _flag(
        None, "with --logger mlflow: your MLflow server (default sqlite:///STUDY/mlflow.db)", False
    )

    def __post_init__(self) -> None:
        if not self.weightings:
            opted_in = [w for w in OPT_IN_WEIGHTINGS if getattr(self, w)]
            object.__setattr__(self, "weightings", new_study_weightings(opted_in))

    @property
    def mode(self) -> str:
        """``max`` or ``min``, from the metric."""
        return "max" if HIGHER_IS_BETTER[self.metric] else "min"

    @property
    def objective_keys(self) -> tuple[str, ...]:
        """The metrics of a multi-objective study (``--objectives``), in the order given; empty for a study
        of one objective (`UserError` naming the flag when they are not two or more known metrics)."""
        return () if self.objectives is None else parse_objectives(self.objectives)

    @property
    def space(self) -> SearchSpace:
        """The search space of this study."""
        return SearchSpace(self.weightings, tune_lr=self.tune_lr)

    @property
    def design(self) -> dict[str, Any]:
        """How the trials are shared among the weighting methods (study.json's ``design``):
        ``per_weighting`` trials each, or None where the sampler chooses each trial's method."""
        return {"per_weighting": self.per_weighting, "weightings": list(self.weightings)}

    @functools.cached_property
    def base_config(self) -> TrainConfig:
        """The training configuration the trials share before their points of the space: the preset with
        the study's data, epochs, seed, device, threads and ``--set`` values (`ConfigError` if invalid)."""
        values: dict[str, Any] = {
            "data_root": self.data_root,
            "epochs": self.max_epochs,
            "seed": self.seed,
            "device": "cuda" if self.gpus_per_trial > 0 else "cpu",
            "num_threads": max(1, math.floor(self.cpus_per_trial)),
            **dict(self.overrides),
        }
        return make_config(self.preset, **values)

    def to_json(self) -> dict[str, Any]:
        """A JSON object (overrides as an object, weightings as a list)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["overrides"] = dict(self.overrides)
        values["weightings"] = list(self.weightings)
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> StudySettings:
        """The inverse of `to_json`."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs["overrides"] = tuple(sorted(dict(values.get("overrides") or {}).items()))
        if isinstance(kwargs.get("weightings"), list):
            kwargs["weightings"] = tuple(kwargs["weightings"])
        return cls(**kwargs)

    @classmethod
    def from_study_json(cls, study: Mapping[str, Any]) -> StudySettings:
        """The settings study.json records (its ``settings``). A study recorded before its settings held the
        weightings it searches takes them from its recorded ``space``, whose weighting column lists the
        choices (never from the registry of today: Optuna refuses a categorical whose choices changed);
        `ValueError` when neither holds them."""
        values = dict(study["settings"])
        if "weightings" not in values:
            space = study.get("space") if isinstance(study.get("space"), Mapping) else {}
            columns = [c for c in space.get("columns") or () if isinstance(c, Mapping)]
            values["weightings"] = next(
                (c.get("searched") for c in columns if c.get("name") == WEIGHTING), None
            )
        if not values["weightings"]:  # none would be a new study's: today's registry
            raise ValueError("no weighting methods: neither settings.weightings nor the space's column")
        return cls.from_json(values)


def as_flag(field: str) -> str:
    """A setting's command-line flag: ``num_samples`` -> ``--num-samples``."""
    return f"--{field.replace('_', '-')}"


# The flags that define a study (``--resume`` uses the recorded ones): every field but where it is stored.
STUDY_FLAGS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(StudySettings)
    if "help" in f.metadata and f.name not in ("name", "storage_path")
)


def new_settings(given: Mapping[str, Any]) -> StudySettings:
    """A new study's settings from the values given (field name -> value; None or absent: not given),
    every other one by its default. ``overrides`` given are laid over the preset's."""
    values = {k: v for k, v in given.items() if v is not None}
    if "per_weighting" in values and "num_samples" in values:
        raise UserError(
            "--num-samples and --per-weighting are exclusive: --per-weighting N runs N trials for "
            "each weighting method, and that is the total"
        )
    preset = values.get("preset", StudySettings.preset)
    defaults = PRESET_DEFAULTS.get(preset)
    if "max_epochs" not in values:
        values["max_epochs"] = defaults.max_epochs if defaults else make_config(preset).epochs
    overrides = {**dict(defaults.overrides if defaults else ()), **dict(values.get("overrides", ()))}
    values["overrides"] = tuple(sorted(overrides.items()))
    if "grace_period" not in values:
        epochs = values["max_epochs"]
        factor = max(
            values.get("reduction_factor", StudySettings.reduction_factor), 2
        )  # `validate` checks it
        values["grace_period"] = min(epochs, max(MIN_GRACE_PERIOD, epochs // factor**2))
    values.setdefault("name", time.strftime("study-%Y%m%d-%H%M%S"))
    settings = StudySettings(**values)
    if isinstance(settings.per_weighting, int):  # `validate` names the flag otherwise
        settings = dataclasses.replace(
            settings, num_samples=settings.per_weighting * len(settings.weightings)
        )
    return settings


def validate(settings: StudySettings) -> None:
    """Raise `UserError` naming the flag when a setting has the wrong type, is not finite or is out of
    range, or a ``--set`` value is not one its `TrainConfig` field accepts."""
    check_field_types(settings, as_flag)
    check_logger(settings.logger, settings.mlflow_tracking_uri)
    checks = [
        (
            settings.per_weighting is None or settings.per_weighting >= 1,
            f"--per-weighting must be at least 1, got {settings.per_weighting}",
        ),
        (settings.num_samples >= 1, f"--num-samples must be at least 1, got {settings.num_samples}"),
        (
            settings.per_weighting is None
            or settings.num_samples == settings.per_weighting * len(settings.space.weightings),
            f"--per-weighting {settings.per_weighting} with {len(settings.space.weightings)} weighting "
            f"methods ({', '.join(settings.space.weightings)}) makes "
            f"{(settings.per_weighting or 0) * len(settings.space.weightings)} trials, not "
            f"{settings.num_samples} (--num-samples)",
        ),
        (0 <= settings.seed < 2**32, f"--seed must be between 0 and 2**32 - 1, got {settings.seed}"),
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
            settings.sampler in SAMPLERS,
            f"--sampler must be one of {', '.join(SAMPLERS)}, got {settings.sampler}",
        ),
        (
            settings.sampler not in MULTI_OBJECTIVE_SAMPLERS or settings.objectives is not None,
            f"--sampler {settings.sampler} searches a multi-objective study: it needs --objectives",
        ),
        (
            settings.sampler not in MULTI_OBJECTIVE_SAMPLERS or settings.per_weighting is None,
            f"--sampler {settings.sampler} draws a trial's whole point at once, before its weighting is "
            "known, so it cannot tune each weighting method on its own (--per-weighting): use tpe",
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
    unknown = [w for w in settings.weightings if w not in WEIGHTINGS]
    if unknown:
        raise UserError(
            f"the weighting methods searched must be registered ones ({', '.join(WEIGHTINGS)}), got "
            f"{', '.join(map(str, unknown))}"
        )
    settings.objective_keys  # noqa: B018 - UserError naming --objectives when they are not two known metrics
    fixed = sorted(set(dict(settings.overrides)) & set(FLAG_FIELDS))
    if fixed:
        raise UserError(f"--set cannot change {', '.join(fixed)}: the study sets it (see --help)")
    searched = sorted(set(dict(settings.overrides)) & set(settings.space.fields))
    if searched:
        raise UserError(
            f"--set cannot change {', '.join(searched)}: the study searches it (a value is either fixed or "
            "searched; see --help)"
        )
    make_config(settings.preset)  # ConfigError (a UserError) for an unknown preset
    for key, value in settings.overrides:
        try:
            make_config(settings.preset, **{key: value})
        except ConfigError as error:
            raise ConfigError(f"--set {key}={value}: {error}") from None
    settings.base_config  # noqa: B018 - ConfigError for --set values that do not go together
