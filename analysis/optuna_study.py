"""What the study's Optuna journal tells beyond results.csv: the hyperparameter importances."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

MIN_COMPLETE_TRIALS = 3


@dataclass(frozen=True)
class Importance:
    """Hyperparameter importances, or the reason there are none; with the trial counts behind them."""

    values: pd.Series | None
    evaluator: str
    complete: int
    pruned: int
    failed: int
    message: str


def param_importances(study: Any) -> Importance:
    """Optuna's `get_param_importances` with its default evaluator (PED-ANOVA in Optuna 5, which
    also rates conditional parameters such as the DWA temperature) over the completed trials.
    Pruned (ASHA-stopped) and failed trials are not used; too few completed trials give a message."""
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
