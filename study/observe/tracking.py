"""Ray's MLflow and W&B loggers, each trial one run named by its trial number (``study.observe.loggers`` uses
them; this module imports mlflow, so it is loaded only for ``--logger mlflow`` or ``wandb``)."""

from __future__ import annotations

import os
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback

from study.space import TRIAL_NUMBER
from study.trainable import EPOCH_KEY, epoch_metrics, trial_name, trial_number

RAY_TRIAL_ID_TAG = "ray_trial_id"


class StudyMLflow(MLflowLoggerCallback):
    """Ray's MLflow logger with one run per trial named ``trial_NNN`` and tagged with its trial number
    (found again when a resumed study continues the trial), the epoch as the step of the trial's own
    metrics, and the experiment's artifacts at `artifact_location` when it creates the experiment."""

    def __init__(self, tracking_uri: str, *, experiment_name: str, artifact_location: str | None) -> None:
        super().__init__(tracking_uri, experiment_name=experiment_name)
        self._artifact_location = artifact_location

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Connect to the store and find or create the study's experiment."""
        self.mlflow_util.setup_mlflow(
            tracking_uri=self.tracking_uri,
            experiment_name=self.experiment_name,
            artifact_location=self._artifact_location,
        )
        self.tags = self.tags or {}
        self._trial_runs: dict[Any, str] = {}

    def log_trial_start(self, trial: Any) -> None:
        """Find or start the trial's run and log its point as parameters."""
        if trial not in self._trial_runs:
            self._trial_runs[trial] = self._run_of(trial)
        self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=trial.config)

    def _run_of(self, trial: Any) -> str:
        number = trial_number(trial)
        client = self.mlflow_util._get_client()
        found = client.search_runs(
            [self.mlflow_util.experiment_id], filter_string=f"tags.{TRIAL_NUMBER} = '{number}'"
        )
        if found:
            return found[0].info.run_id
        tags = {**self.tags, TRIAL_NUMBER: str(number), RAY_TRIAL_ID_TAG: trial.trial_id}
        return self.mlflow_util.start_run(run_name=trial_name(trial), tags=tags).info.run_id

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        """The trial's metrics at step = the epoch."""
        if trial not in self._trial_runs:
            self.log_trial_start(trial)
        self.mlflow_util.log_metrics(
            run_id=self._trial_runs[trial], metrics_to_log=epoch_metrics(result), step=result[EPOCH_KEY]
        )


class StudyWandb(WandbLoggerCallback):
    """Ray's W&B logger with one run per trial named ``trial_NNN``; ``$WANDB_MODE`` of the driver (e.g.
    ``offline``) also holds in Ray's logging actors, which do not inherit the driver's environment."""

    def _start_logging_actor(self, trial: Any, exclude_results: list[str], **init: Any) -> None:
        mode = {"mode": os.environ["WANDB_MODE"]} if "WANDB_MODE" in os.environ else {}
        super()._start_logging_actor(trial, exclude_results, **{**init, **mode, "name": trial_name(trial)})
