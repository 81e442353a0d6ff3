"""What the study's Optuna journal tells beyond results.csv: the hyperparameter importances."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

MIN_COMPLETE_TRIALS = 3
# Completed trials needed for each value of a categorical parameter: with none, its importance reads 0
# (3 completed trials, all DWA, once rated the weighting 0.00); with one, its spread is unknown.
MIN_TRIALS_PER_VALUE = 2


@dataclass(frozen=True)
class Importance:
    """Hyperparameter importances, or the reason there are none; with the trial counts behind them."""

    values: pd.Series | None
    evaluator: str
    complete: int
    pruned: int
    failed: int
    message: str


def uncovered_values(trials: Iterable[Any]) -> dict[str, dict[str, int]]:
    """Per categorical parameter whose values the completed `trials` do not all cover at least
    `MIN_TRIALS_PER_VALUE` times: the count of completed trials of each of its values."""
    from optuna.distributions import CategoricalDistribution

    trials = list(trials)
    choices: dict[str, tuple[Any, ...]] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            if isinstance(distribution, CategoricalDistribution):
                choices.setdefault(name, tuple(distribution.choices))
    counts = {name: {str(v): sum(t.params.get(name) == v for t in trials) for v in values}
              for name, values in choices.items()}  # fmt: skip
    return {name: c for name, c in counts.items() if min(c.values()) < MIN_TRIALS_PER_VALUE}


def param_importances(study: Any) -> Importance:
    """Optuna's `get_param_importances` with its default evaluator (PED-ANOVA in Optuna 5, which
    also rates conditional parameters such as the DWA temperature) over the completed trials.
    Pruned (ASHA-stopped) and failed trials are not used; too few completed trials, or completed trials
    that do not cover every value of a categorical parameter `MIN_TRIALS_PER_VALUE` times, give the
    reason instead."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    evaluator = PedAnovaImportanceEvaluator()
    name = f"{type(evaluator).__name__} (Optuna {optuna.__version__})"
    if complete < MIN_COMPLETE_TRIALS:
        message = (
            f"not computed: {complete} completed trial(s) in the Optuna journal, at least "
            f"{MIN_COMPLETE_TRIALS} needed (ASHA-stopped trials are pruned and not used)"
        )
        return Importance(None, name, complete, pruned, failed, message)
    uncovered = uncovered_values(t for t in trials if t.state == TrialState.COMPLETE)
    if uncovered:
        counts = "; ".join(
            f"{param}: " + ", ".join(f"{value} {n}" for value, n in values.items())
            for param, values in uncovered.items()
        )
        message = (
            f"not computed: the {complete} completed trials do not cover every value of "
            f"{', '.join(uncovered)} at least {MIN_TRIALS_PER_VALUE} times (completed trials per value: "
            f"{counts}); a value no completed trial took would read as unimportant"
        )
        return Importance(None, name, complete, pruned, failed, message)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        message = f"not computed: Optuna could not rate the parameters ({error})"
        return Importance(None, name, complete, pruned, failed, message)
    if not values:
        return Importance(None, name, complete, pruned, failed, "not computed: no parameter to rate")
    series = pd.Series(values, name="importance", dtype=float).sort_values(ascending=False)
    message = (
        f"{name} on the {complete} completed trial(s); {pruned} pruned (stopped early by ASHA) and "
        f"{failed} failed trial(s) are not used"
    )
    return Importance(series, name, complete, pruned, failed, message)
