"""The study's sampler: Optuna's TPE (constant liar, independent per value as TPE's default), drawn so
that a trial's point is fixed once recorded and never repeats another (docs/study.md, "Interrupt and
resume", and "The same budget for every weighting").

- Seed: the first driver run draws with ``--seed`` itself; a later run (a resume) with a seed derived
  from ``--seed`` and the number of values the journal holds (`run_seed`). Every recorded draw adds to
  that number, so no driver run replays the draws of an earlier one (a sampler seeded with ``--seed`` on
  every run gave a resumed study's first new trial the point of the earlier run's first sampled trial).
- Which: TPE (multi-objective TPE in a study of several objectives, Optuna's own), or with ``--sampler
  nsga2`` Optuna's NSGA-II (a study of several objectives only).
- Per method (``--per-weighting``): a trial's weighting is fixed when the study is created
  (`study.search.design`), and TPE draws its other values from its own method's trials only, so each
  method is tuned on its own budget and none learns from another's trials.
- Trained values: a trial whose folder already holds a configuration gets any value its recorded point
  lacks from it (`trained`), so a point that a crash cut half-way trains what the trial trained so far.
- No repeat: a continuous value that would make the trial's point one the journal already holds is
  drawn again.

Values a trial already has are never asked of a sampler: Optuna returns the recorded ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from study.space import WEIGHTING

MAX_DRAWS = 100  # draws of one value before giving up on avoiding a repeated point
SAMPLERS: tuple[str, ...] = ("tpe", "nsga2")  # ``--sampler``
DEFAULT_SAMPLER = "tpe"
# Samplers of a multi-objective study only: NSGA-II draws a trial's whole point at once from its parents
# (so it cannot be limited to a weighting method's trials) and ranks them by non-domination.
MULTI_OBJECTIVE_SAMPLERS: tuple[str, ...] = ("nsga2",)
Trained = Callable[[int], Mapping[str, Any] | None]  # trial number -> the point its folder trained


def recorded_values(study: optuna.Study) -> int:
    """How many values the study's trials hold: every recorded draw adds one."""
    return sum(len(t.params) for t in study.get_trials(deepcopy=False))


def run_seed(seed: int, recorded: int) -> int:
    """The sampler's seed for a driver run that finds `recorded` values in the journal: `seed` while
    none is recorded (an uninterrupted study draws as with ``TPESampler(seed)``), else a 32-bit hash of
    both (numpy's SeedSequence), a new random stream for each count."""
    if recorded == 0:
        return seed
    return int(np.random.SeedSequence([seed, recorded]).generate_state(1)[0])


class StudySampler(BaseSampler):
    """`inner` (TPE) with the study's rules: see the module's docstring. `stratum` (the weighting) is
    the parameter whose value splits the trials into separately tuned groups; None: one group."""

    def __init__(
        self, inner: BaseSampler, *, stratum: str | None = None, trained: Trained | None = None
    ) -> None:
        self._inner = inner
        self._stratum = stratum
        self._trained = trained
        self._trained_points: dict[int, Mapping[str, Any]] = {}

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """`inner`'s joint search space on the whole study; none per method: Optuna draws a trial's joint
        values when the trial is created, before its weighting is one of its values, so they could not
        come from its method's trials (each value is then drawn on its own, `sample_independent`)."""
        return self._inner.infer_relative_search_space(study, trial) if self._stratum is None else {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """`inner`'s joint draw, its trained values put in, drawn again while it would repeat a point."""
        if not search_space:
            return {}
        trained = {
            k: v
            for k, v in self._trained_point(trial.number).items()
            if k in search_space and _within(search_space[k], v)
        }
        continuous = any(not isinstance(d, CategoricalDistribution) for d in search_space.values())
        for _ in range(MAX_DRAWS):
            drawn = self._inner.sample_relative(study, trial, search_space)
            values = {**drawn, **trained} if drawn else {}  # none yet: TPE's first trials draw one by one
            if not (values and continuous) or not _repeats(study.get_trials(deepcopy=False), trial, values):
                return values
        raise RuntimeError(f"{MAX_DRAWS} joint draws for trial {trial.number} all repeated a point")

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        """The trained value if the trial's folder has one, else `inner`'s draw on the trial's group,
        drawn again while it would repeat a recorded point."""
        trained = self._trained_point(trial.number).get(param_name)
        if trained is not None and _within(param_distribution, trained):
            return trained
        group, member = self._group(study, trial)
        for _ in range(MAX_DRAWS):
            value = self._inner.sample_independent(group, member, param_name, param_distribution)
            if isinstance(param_distribution, CategoricalDistribution) or not _repeats(
                study.get_trials(deepcopy=False), trial, {**trial.params, param_name: value}
            ):
                return value
        raise RuntimeError(f"{MAX_DRAWS} draws of {param_name} for trial {trial.number} all repeated a point")

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """`inner`'s."""
        self._inner.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        """`inner`'s."""
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """`inner`'s."""
        self._inner.reseed_rng()

    def _trained_point(self, number: int) -> Mapping[str, Any]:
        if number not in self._trained_points:
            self._trained_points[number] = (self._trained(number) if self._trained else None) or {}
        return self._trained_points[number]

    def _group(self, study: optuna.Study, trial: FrozenTrial) -> tuple[optuna.Study, FrozenTrial]:
        """The study as `inner` sees it for `trial`: the whole study, or with a stratum an in-memory copy
        of the trials of the trial's group, the trial last (so that TPE leaves it out by its number)."""
        if self._stratum is None:
            return study, trial
        key = trial.params.get(self._stratum)
        same = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and t.params and t.params.get(self._stratum) == key
        ]
        storage = optuna.storages.InMemoryStorage()
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per draw about a new study
        try:
            storage.create_new_study(study.directions, "group")
        finally:
            optuna.logging.set_verbosity(verbosity)
        group = optuna.load_study(study_name="group", storage=storage, sampler=self._inner)
        group.add_trials([*same, trial])
        return group, group.get_trials(deepcopy=False)[-1]


def study_sampler(
    study: optuna.Study,
    seed: int,
    *,
    per_weighting: bool = False,
    trained: Trained | None = None,
    kind: str = DEFAULT_SAMPLER,
) -> StudySampler:
    """The sampler of a driver run on `study` (read it before anything is asked): TPE with constant liar
    (trials still running count as bad, so parallel trials spread out), seeded by `run_seed`; Optuna's
    default joint TPE, or with `per_weighting` one group per weighting method, each value drawn on its
    own from the group's trials. TPE is Optuna's multi-objective TPE when `study` has several
    directions. `kind` ``nsga2``: Optuna's NSGA-II with its defaults (a population of 50, so a study's
    first 50 trials are its random first generation)."""
    seed = run_seed(seed, recorded_values(study))
    if kind == "nsga2":
        return StudySampler(NSGAIISampler(seed=seed), trained=trained)
    if per_weighting:
        inner = TPESampler(seed=seed, constant_liar=True, multivariate=False)
        return StudySampler(inner, stratum=WEIGHTING, trained=trained)
    return StudySampler(TPESampler(seed=seed, constant_liar=True), trained=trained)


def _within(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    return getattr(distribution, "low", value) <= value <= getattr(distribution, "high", value)


def _repeats(trials: Sequence[FrozenTrial], trial: FrozenTrial, values: Mapping[str, Any]) -> bool:
    """Whether another trial has all of `values`, the values `trial` would have so far: drawn in the same
    order, a whole point can only repeat another if it did so at its first continuous value."""
    return any(
        t.number != trial.number and all(t.params.get(k) == v for k, v in values.items()) for t in trials
    )
