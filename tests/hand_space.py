"""A recorded search space written by hand (as study.json holds it), with the config columns weighting,
temperature (DWA only), weight_decay, step_size, gamma, lr, and the columns that the hand-built trial tables
of the table and figure tests share."""

from __future__ import annotations

import numpy as np

from analysis.space import RecordedSpace


def _column(name: str, label: str, log: bool = False, weightings: list[str] | None = None) -> dict:
    return {"name": name, "label": label, "categorical": False, "log": log, "weightings": weightings}


HAND_SPACE = RecordedSpace.from_json(
    {
        "columns": [
            {**_column("weighting", "weighting"), "categorical": True},
            _column("temperature", "DWA temperature T", log=True, weightings=["dwa"]),
            _column("weight_decay", "weight decay", log=True),
            _column("step_size", "StepLR step (epochs)"),
            _column("gamma", "StepLR gamma"),
            _column("lr", "learning rate", log=True),
        ],
        "labels": {"use_weight_decay": "weight decay on"},
    }
)

# What the table and figure tests' four hand-built trials share: their states (the last one failed, with no
# metrics), the numeric config columns of HAND_SPACE and the final metrics. Each test adds its trial ids,
# epochs, weightings and temperatures.
HAND_TRIAL_COLUMNS = {
    "state": ["completed", "stopped_early", "completed", "failed"],
    "weight_decay": [0.0, 1e-4, 1e-5, 0.0],
    "step_size": [50, 25, 100, 10],
    "gamma": [0.5, 0.1, 0.9, 0.5],
    "lr": [1e-4, 3e-4, 2e-5, 1e-3],
    "last_score": [0.40, 0.55, 0.50, np.nan],
    "last_miou": [0.50, 0.60, 0.70, np.nan],
    "last_pixel_acc": [0.80, 0.85, 0.90, np.nan],
    "last_abs_err": [0.020, 0.018, 0.025, np.nan],
    "last_rel_err": [0.40, 0.30, 0.35, np.nan],
}
