"""The study's search space, define-by-run for Optuna, and the two published configurations.

The space is what the study varies around the chosen preset (DESIGN.md, "Training"):

- ``weighting``: equal or DWA (and uncertainty behind ``uncertainty=True``);
- ``temperature``: DWA's T, only when the weighting is DWA, log scale around the paper's T = 2;
- ``use_weight_decay`` then ``weight_decay``: the paper's "no weight decay" is ``use_weight_decay=False``,
  otherwise a log-scale value around the seed report's 1e-4;
- ``step_fraction``: StepLR's step size as a fraction of the epoch budget, so the same point means the
  same schedule shape at every preset (paper 100/200 = 0.5, seed report 25/100 = 0.25);
- ``gamma``: StepLR's decay factor (both published configs use 0.5);
- ``lr``: Adam's learning rate, log scale, only behind ``tune_lr=True`` (otherwise the preset's).

Besides the searched values, a point carries ``trial_number``, Optuna's number of the trial (0, 1, ...),
which the trainable adds to the study's seed. With one seed for all trials, the many configurations that
train identically for their first epochs (DWA weights like equal weighting until epoch 3, StepLR is
constant until its first step, weight decay off) would tie at ASHA's early rungs, and ties all go on, so
ASHA would hardly stop anything. ``train_overrides`` turns a point into `TrainConfig` field values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

WEIGHTINGS: tuple[str, ...] = ("equal", "dwa")
UNCERTAINTY = "uncertainty"
TEMPERATURE_RANGE: tuple[float, float] = (0.5, 8.0)
WEIGHT_DECAY_RANGE: tuple[float, float] = (1e-6, 1e-2)
STEP_FRACTION_RANGE: tuple[float, float] = (0.1, 1.0)
GAMMA_RANGE: tuple[float, float] = (0.1, 0.9)
LR_RANGE: tuple[float, float] = (1e-5, 1e-2)

TRIAL_NUMBER = "trial_number"
PAPER_LR = 1e-4
# Liu et al. 2019: Adam lr 1e-4, no weight decay, StepLR(100, 0.5) over 200 epochs; equal weighting
# (the verified row of DESIGN.md's table).
PAPER_POINT: dict[str, Any] = {
    "weighting": "equal",
    "use_weight_decay": False,
    "step_fraction": 0.5,
    "gamma": 0.5,
}
# The seed report: DWA T = 2, weight decay 1e-4, StepLR(25, 0.5) over 100 epochs.
SEED_REPORT_POINT: dict[str, Any] = {
    "weighting": "dwa",
    "temperature": 2.0,
    "use_weight_decay": True,
    "weight_decay": 1e-4,
    "step_fraction": 0.25,
    "gamma": 0.5,
}


@dataclass(frozen=True)
class SearchSpace:
    """The search space; calling it on an Optuna trial suggests one point (define-by-run)."""

    uncertainty: bool = False
    tune_lr: bool = False
    lr_range: tuple[float, float] = LR_RANGE

    @property
    def weightings(self) -> tuple[str, ...]:
        """The weighting methods searched over."""
        return (*WEIGHTINGS, UNCERTAINTY) if self.uncertainty else WEIGHTINGS

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest one point on `trial`; Ray's `OptunaSearch` collects the suggested values and adds the
        returned ``trial_number`` (not a searched value: Optuna's sampler never sees it)."""
        weighting = trial.suggest_categorical("weighting", list(self.weightings))
        if weighting == "dwa":
            trial.suggest_float("temperature", *TEMPERATURE_RANGE, log=True)
        if trial.suggest_categorical("use_weight_decay", [False, True]):
            trial.suggest_float("weight_decay", *WEIGHT_DECAY_RANGE, log=True)
        trial.suggest_float("step_fraction", *STEP_FRACTION_RANGE)
        trial.suggest_float("gamma", *GAMMA_RANGE)
        if self.tune_lr:
            trial.suggest_float("lr", *self.lr_range, log=True)
        return {TRIAL_NUMBER: trial.number}

    def published_points(self) -> list[dict[str, Any]]:
        """The paper's and the seed report's configurations, as points of this space."""
        extra = {"lr": PAPER_LR} if self.tune_lr else {}
        return [{**PAPER_POINT, **extra}, {**SEED_REPORT_POINT, **extra}]


def trial_seed(point: Mapping[str, Any], seed: int) -> int:
    """The training seed of a trial: the study's `seed` plus the trial's number (0 when it has none)."""
    return seed + int(point.get(TRIAL_NUMBER, 0))


def step_size(step_fraction: float, epochs: int) -> int:
    """StepLR's step size in epochs for a fraction of an `epochs` budget (at least 1)."""
    return max(1, round(step_fraction * epochs))


def train_overrides(point: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """The `TrainConfig` field values of a point of the space, for a budget of `epochs` epochs."""
    overrides: dict[str, Any] = {
        "weighting": point["weighting"],
        "weight_decay": float(point["weight_decay"]) if point.get("use_weight_decay") else 0.0,
        "step_size": step_size(float(point["step_fraction"]), epochs),
        "gamma": float(point["gamma"]),
    }
    if point["weighting"] == "dwa":
        overrides["temperature"] = float(point["temperature"])
    if "lr" in point:
        overrides["lr"] = float(point["lr"])
    return overrides
