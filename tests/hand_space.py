"""A recorded search space written by hand (as study.json holds it) for the hand-built trial tables of the
table and figure tests: the config columns weighting, temperature (DWA only), weight_decay, step_size,
gamma, lr."""

from __future__ import annotations

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
