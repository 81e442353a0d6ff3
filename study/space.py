"""The study's search space as one table, `DIMENSIONS`, and everything derived from it.

One `Dimension` per searched value, in the order Optuna suggests them (define-by-run):

- ``weighting``: the study's weighting methods (`SearchSpace.weightings`: a new study's are the registered
  ones of `mtan.weighting`, uncertainty behind ``--uncertainty``, `new_study_weightings`; a resumed study's
  are those it recorded); each method's own hyperparameters (`mtan.weighting.Hyperparameter`, e.g. DWA's
  temperature T, log scale around the paper's T = 2) follow it, searched only for that method's trials,
  on the scale the method declares; a logit-scale one (scalarization's depth share w) is searched as
  Optuna's parameter ``<name>_logit`` = log(w / (1 - w)), uniform between the logits of its range, and
  the trial trains with w = 1 / (1 + exp(-logit)); results.csv shows both;
- ``use_weight_decay`` then ``weight_decay``: the paper's "no weight decay" is ``use_weight_decay=False``
  (weight decay 0), otherwise a log-scale value around the seed report's 1e-4;
- ``step_fraction``: StepLR's step size as a fraction of the epoch budget, so the same point means the
  same schedule shape at every preset (paper 100/200 = 0.5, seed report 25/100 = 0.25); the trial
  trains with ``step_size`` = round(step_fraction x epochs) and results.csv shows both;
- ``gamma``: StepLR's decay factor (both published configs use 0.5);
- ``lr``: Adam's learning rate, log scale, only behind ``--tune-lr`` (otherwise the preset's).

From the table derive: the Optuna suggestion (`SearchSpace.__call__`), the published points
(`SearchSpace.published_points`), the `TrainConfig` values of a point (`train_overrides`), the config
columns of results.csv (`SearchSpace.columns`, `SearchSpace.column_values`), the `TrainConfig` fields the
study sets (`SearchSpace.fields`), the JSON description study.json records for the analysis
(`SearchSpace.describe`: labels, log scales, the weightings a column applies to), whether a point is
whole (`SearchSpace.is_complete`) and the point a trial's config trained (`SearchSpace.point_of`).

Besides the searched values, a point carries ``trial_number``, Optuna's number of the trial (0, 1, ...),
which the trainable adds to the study's seed. With one seed for all trials, the many configurations that
train identically for their first epochs (DWA weights like equal weighting until epoch 3, StepLR is
constant until its first step, weight decay off) would tie at ASHA's early rungs, and ties all go on, so
ASHA would hardly stop anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mtan.weighting import WEIGHTINGS, Scale

if TYPE_CHECKING:
    import optuna

TRIAL_NUMBER = "trial_number"
WEIGHTING = "weighting"  # the dimension that chooses the weighting method
PAPER, SEED_REPORT = "paper", "seed_report"
# Liu et al. 2019: Adam lr 1e-4, no weight decay, StepLR(100, 0.5) over 200 epochs, equal weighting.
# The seed report: DWA T = 2, weight decay 1e-4, StepLR(25, 0.5) over 100 epochs.
PUBLISHED: tuple[str, ...] = (PAPER, SEED_REPORT)
# Weighting methods a new study searches only when opted in (each by the study's flag of its name).
OPT_IN_WEIGHTINGS: tuple[str, ...] = ("uncertainty",)


def logit(p: float) -> float:
    """log(p / (1 - p)), the inverse of `sigmoid`."""
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)), the inverse of `logit`."""
    return 1.0 / (1.0 + math.exp(-x))


def exact_logit(p: float, search_ulps: int = 64) -> float:
    """A logit x with ``sigmoid(x) == p`` exactly, searched among the floats next to `logit(p)` (every `p`
    that came from `sigmoid` has one there), else `logit(p)`: so a point recovered from a trial's
    config.json trains that config's value to the bit, not one rounding away from it."""
    x = logit(p)
    for toward in (math.inf, -math.inf):
        y = x
        for _ in range(search_ulps + 1):
            if sigmoid(y) == p:
                return y
            y = math.nextafter(y, toward)
    return x


def new_study_weightings(opted_in: Collection[str] = ()) -> tuple[str, ...]:
    """The weighting methods a new study searches: the registered ones (`mtan.weighting.WEIGHTINGS`, in its
    order), those of `OPT_IN_WEIGHTINGS` only when in `opted_in`. A study records its own (study.json's
    ``settings``) and a resume searches those: Optuna refuses a categorical whose choices changed."""
    return tuple(w for w in WEIGHTINGS if w not in OPT_IN_WEIGHTINGS or w in opted_in)


def step_size(step_fraction: float, epochs: int) -> int:
    """StepLR's step size in epochs for a fraction of an `epochs` budget (at least 1)."""
    return max(1, round(step_fraction * epochs))


@dataclass(frozen=True)
class Dimension:
    """One searched value: how Optuna suggests it, when, how it is shown, and what it sets in the config."""

    name: str  # Optuna's parameter and the results.csv column
    label: str
    choices: tuple[Any, ...] = ()  # categorical when given, else a float in `low`..`high`
    low: float = 0.0
    high: float = 0.0
    # How the value is spaced over `low`..`high`. On the logit scale Optuna's parameter (`name`, which
    # must differ from `field`) is the value's logit, suggested uniformly between the logits of the range.
    scale: Scale = "linear"
    weightings: tuple[str, ...] | None = None  # suggested only for trials of these methods
    switch: str | None = None  # suggested only when this (boolean) dimension is True
    flag: str | None = None  # in the space only when this `SearchSpace` field is True
    field: str | None = None  # the `TrainConfig` field it sets (None: it only switches others)
    off: Any = None  # the field's value when `switch` is False
    to_field: Callable[[Any, int], Any] | None = None  # (value, epochs) -> field value; None: float(value)
    from_field: Callable[[Any, int], Any] | None = None  # (field value, epochs) -> a value giving it
    field_label: str = ""  # the label of `field` where it differs from `name`
    published: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # value at PAPER / SEED_REPORT

    @property
    def categorical(self) -> bool:
        """Whether Optuna suggests it from `choices`."""
        return bool(self.choices)

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of Optuna's parameter: `low`..`high`, or their logits on the logit scale."""
        return (logit(self.low), logit(self.high)) if self.scale == "logit" else (self.low, self.high)

    def suggest(self, trial: optuna.Trial) -> Any:
        """Optuna's value of this dimension on `trial`."""
        if self.categorical:
            return trial.suggest_categorical(self.name, list(self.choices))
        return trial.suggest_float(self.name, *self.bounds, log=self.scale == "log")

    def applies(self, point: Mapping[str, Any]) -> bool:
        """Whether a trial at `point` has this dimension (its weighting, its switch)."""
        if self.weightings is not None and point.get(WEIGHTING) not in self.weightings:
            return False
        return self.switch is None or bool(point.get(self.switch))

    def field_value(self, point: Mapping[str, Any], epochs: int) -> Any:
        """The value of `field` at `point` (`off` when switched off; None when it does not apply)."""
        if self.switch is not None and not point.get(self.switch):
            return self.off
        if not self.applies(point):
            return None
        value = point[self.name]
        if not self.categorical:
            value = sigmoid(float(value)) if self.scale == "logit" else float(value)
        return self.to_field(value, epochs) if self.to_field else value


def _weighting_dimensions() -> tuple[Dimension, ...]:
    """The weighting choice, then each method's own hyperparameters, as `mtan.weighting` declares them."""
    choice = Dimension(
        WEIGHTING,
        "weighting",
        choices=tuple(WEIGHTINGS),
        field=WEIGHTING,
        published={PAPER: "equal", SEED_REPORT: "dwa"},
    )
    own = []
    for name, method in WEIGHTINGS.items():
        for h in method.hyperparameters:
            on_logit = h.scale == "logit"
            published = logit(h.default) if on_logit else h.default  # in Optuna's parameter
            own.append(
                Dimension(
                    f"{h.name}_logit" if on_logit else h.name,
                    f"logit of {h.label}" if on_logit else h.label,
                    low=h.search[0],
                    high=h.search[1],
                    scale=h.scale,
                    weightings=(name,),
                    field=h.name,
                    field_label=h.label,
                    published={p: published for p, w in choice.published.items() if w == name},
                )
            )
    return (choice, *own)


# fmt: off
DIMENSIONS: tuple[Dimension, ...] = (
    *_weighting_dimensions(),
    Dimension("use_weight_decay", "weight decay on", choices=(False, True),
              published={PAPER: False, SEED_REPORT: True}),
    Dimension("weight_decay", "weight decay", low=1e-6, high=1e-2, scale="log", switch="use_weight_decay",
              field="weight_decay", off=0.0, published={SEED_REPORT: 1e-4}),
    Dimension("step_fraction", "StepLR step (fraction of the epochs)", low=0.1, high=1.0, field="step_size",
              to_field=lambda v, epochs: step_size(float(v), epochs), field_label="StepLR step (epochs)",
              from_field=lambda size, epochs: size / epochs, published={PAPER: 0.5, SEED_REPORT: 0.25}),
    Dimension("gamma", "StepLR gamma", low=0.1, high=0.9, field="gamma",
              published={PAPER: 0.5, SEED_REPORT: 0.5}),
    Dimension("lr", "learning rate", low=1e-5, high=1e-2, scale="log", flag="tune_lr", field="lr",
              published={PAPER: 1e-4, SEED_REPORT: 1e-4}),
)
# fmt: on


@dataclass(frozen=True)
class SearchSpace:
    """The search space over the weighting methods `weightings` (registered ones; default: a new study's
    without opt-ins); calling it on an Optuna trial suggests one point (define-by-run)."""

    weightings: tuple[str, ...] = new_study_weightings()
    tune_lr: bool = False

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions of this space (opt-in ones when their flag is set), weightings restricted."""
        kept = []
        for d in DIMENSIONS:
            if d.flag is not None and not getattr(self, d.flag):
                continue
            if d.name == WEIGHTING:
                d = dataclasses.replace(d, choices=self.weightings)
            if d.weightings is not None and not set(d.weightings) & set(self.weightings):
                continue
            kept.append(d)
        return tuple(kept)

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest one point on `trial`; Ray's `OptunaSearch` collects the suggested values and adds the
        returned ``trial_number`` (not a searched value: Optuna's sampler never sees it)."""
        point: dict[str, Any] = {}
        for d in self.dimensions:
            if not d.applies(point):
                continue
            point[d.name] = d.suggest(trial)
        return {TRIAL_NUMBER: trial.number}

    def is_complete(self, point: Mapping[str, Any]) -> bool:
        """Whether `point` holds every dimension that applies to it (a crash can cut a point half-way)."""
        return all(d.name in point for d in self.dimensions if d.applies(point))

    def point_of(self, config: Mapping[str, Any], epochs: int) -> dict[str, Any]:
        """A point that trains `config`'s values of the space's fields (a flat `TrainConfig`, e.g. a trial
        folder's ``config.json``) for a budget of `epochs`: the inverse of `train_overrides`, up to values
        that give the same field (a StepLR step of 3 of 4 epochs is step_fraction 0.75)."""
        point: dict[str, Any] = {}
        for d in self.dimensions:
            if not d.applies(point):
                continue
            if d.field is None:  # a switch: on when a value it switches is not its `off`
                point[d.name] = any(config[o.field] != o.off for o in self.dimensions if o.switch == d.name)
            elif d.categorical:
                point[d.name] = config[d.field]
            else:
                value = d.from_field(config[d.field], epochs) if d.from_field else config[d.field]
                value = min(max(float(value), d.low), d.high)
                point[d.name] = exact_logit(value) if d.scale == "logit" else value
        return point

    def published_points(self) -> list[dict[str, Any]]:
        """The paper's and the seed report's configurations, as points of this space."""
        points = []
        for source in PUBLISHED:
            point: dict[str, Any] = {}
            for d in self.dimensions:
                if d.applies(point):
                    point[d.name] = d.published[source]
            points.append(point)
        return points

    @property
    def fields(self) -> tuple[str, ...]:
        """The `TrainConfig` fields this space sets."""
        return tuple(dict.fromkeys(d.field for d in self.dimensions if d.field is not None))

    @property
    def columns(self) -> tuple[str, ...]:
        """results.csv's config columns: each searched value by its name, and the config field it sets
        where that has another name (step_fraction and step_size)."""
        names: list[str] = []
        for d in self.dimensions:
            if d.field is not None:
                names += [d.name] if d.field == d.name else [d.name, d.field]
        return tuple(names)

    def column_values(self, point: Mapping[str, Any], epochs: int) -> dict[str, Any]:
        """The config columns of a trial at `point` (None where a value does not apply to it)."""
        values: dict[str, Any] = {}
        for d in self.dimensions:
            if d.field is None:
                continue
            value = d.field_value(point, epochs) if point else None
            if d.field == d.name:
                values[d.name] = value
            else:
                values[d.name] = point.get(d.name) if d.applies(point) else None
                values[d.field] = value
        return values

    def describe(self) -> dict[str, Any]:
        """The space as JSON (study.json's ``space``): its weightings and ``tune_lr``, and per results.csv
        config column its label, whether it is categorical, its scale (and whether that is log), the
        weightings it applies to, its range. A logit-scale dimension's columns: Optuna's parameter, linear
        between the logits, and the config field, on the logit scale over `low`..`high`."""
        columns = []
        for d in self.dimensions:
            if d.field is None:
                continue
            scale = "linear" if d.scale == "logit" else d.scale
            entry = {
                "name": d.name,
                "label": d.label,
                "categorical": d.categorical,
                "log": scale == "log",
                "scale": scale,
                "weightings": list(d.weightings) if d.weightings is not None else None,
                "searched": list(d.choices) if d.categorical else list(d.bounds),
            }
            columns.append(entry)
            if d.field != d.name:
                field = {**entry, "name": d.field, "label": d.field_label, "searched": None}
                if d.scale == "logit":
                    field.update(scale="logit", searched=[d.low, d.high])
                columns.append(field)
        labels = {d.name: d.label for d in self.dimensions}
        return {
            "weightings": list(self.weightings),
            "tune_lr": self.tune_lr,
            "columns": columns,
            "labels": labels,
        }


def trial_seed(point: Mapping[str, Any], seed: int) -> int:
    """The training seed of a trial: the study's `seed` plus the trial's number (0 when it has none)."""
    return seed + int(point.get(TRIAL_NUMBER, 0))


def train_overrides(
    point: Mapping[str, Any], epochs: int, space: SearchSpace | None = None
) -> dict[str, Any]:
    """The `TrainConfig` field values of a point of the space, for a budget of `epochs` epochs (a field
    whose dimension does not apply to the point keeps the base config's value)."""
    space = space or SearchSpace(tuple(WEIGHTINGS), tune_lr="lr" in point)
    overrides: dict[str, Any] = {}
    for d in space.dimensions:
        if d.field is None or (d.switch is None and not d.applies(point)):
            continue
        overrides[d.field] = d.field_value(point, epochs)
    return overrides
