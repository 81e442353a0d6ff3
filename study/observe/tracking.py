"""MLflow and W&B logging, each trial one run named by its trial number (``study.observe.loggers`` uses
them; this module imports mlflow, so it is loaded only for ``--logger mlflow`` or ``wandb``).

Both log what `study.trainable.epoch_metrics` keeps of a Tune result (the trial's own numbers, Ray's keys
left out, the rule the TensorBoard files follow too) at step = the epoch.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.logger import LoggerCallback
from ray.tune.result import TRAINING_ITERATION

from study.search.searcher import RAY_TRIAL_ID
from study.space import TRIAL_NUMBER
from study.trainable import EPOCH_KEY, epoch_metrics, trial_name, trial_number


class StudyMLflow(LoggerCallback):
    """One MLflow run per trial in the experiment `experiment_name` (created with its artifacts at
    `artifact_location`): named ``trial_NNN`` and tagged with its trial number, so a resumed study finds
    it again; the trial's point as parameters, its metrics per epoch, FINISHED or FAILED at its end."""

    def __init__(self, tracking_uri: str, *, experiment_name: str, artifact_location: str | None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self._artifact_location = artifact_location
        self._runs: dict[Any, str] = {}

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Connect to the store and find or create the study's experiment."""
        self._client = MlflowClient(self.tracking_uri)
        found = self._client.get_experiment_by_name(self.experiment_name)
        self._experiment_id = (
            found.experiment_id
            if found is not None
            else self._client.create_experiment(self.experiment_name, self._artifact_location)
        )

    def log_trial_start(self, trial: Any) -> None:
        """Find or start the trial's run and log its point as parameters."""
        if trial not in self._runs:
            self._runs[trial] = self._run_of(trial)
        params = [Param(str(key), str(value)) for key, value in trial.config.items()]
        self._client.log_batch(self._runs[trial], params=params)

    def _run_of(self, trial: Any) -> str:
        number = trial_number(trial)
        found = self._client.search_runs(
            [self._experiment_id], filter_string=f"tags.{TRIAL_NUMBER} = '{number}'"
        )
        if found:
            return found[0].info.run_id
        tags = {TRIAL_NUMBER: str(number), RAY_TRIAL_ID: trial.trial_id}
        run = self._client.create_run(self._experiment_id, tags=tags, run_name=trial_name(trial))
        return run.info.run_id

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        """The trial's metrics at step = the epoch."""
        if trial not in self._runs:
            self.log_trial_start(trial)
        stamp, step = int(time.time() * 1000), int(result[EPOCH_KEY])
        metrics = [Metric(key, value, stamp, step) for key, value in epoch_metrics(result).items()]
        self._client.log_batch(self._runs[trial], metrics=metrics)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        """The run ends FINISHED, or FAILED with the trial."""
        run = self._runs.pop(trial, None)
        if run is not None:
            self._client.set_terminated(run, "FAILED" if failed else "FINISHED")


class StudyWandb(WandbLoggerCallback):
    """Ray's W&B logger, logging the trial's own numbers at step = the epoch. Each trial's run takes the
    Tune trial's name (``trial_NNN``: the driver's ``trial_name_creator``); ``$WANDB_MODE`` of the driver
    (e.g. ``offline``) is passed on to Ray's logging actors, which do not inherit its environment."""

    def __init__(self, **kwargs: Any) -> None:
        mode = {"mode": os.environ["WANDB_MODE"]} if "WANDB_MODE" in os.environ else {}
        super().__init__(**{**kwargs, **mode})

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        """The epoch's metrics; Ray's logging actor takes the step from ``training_iteration``."""
        super().log_trial_result(
            iteration, trial, {**epoch_metrics(result), TRAINING_ITERATION: result[EPOCH_KEY]}
        )
