"""Where a study's trials can be watched while it runs: TensorBoard, MLflow, Weights & Biases.

``tune_callbacks`` builds the Tune callbacks of ``--logger`` (docs/study.md, "Watching a study"). Every
logger except ``none`` writes TensorBoard event files, one folder per trial named like its run folder:
``STUDY/tensorboard/trial_003/`` (``tensorboard --logdir STUDY/tensorboard``). ``mlflow`` also logs to
MLflow through its client (`study.observe.tracking`): one run per trial, named by its trial number, with
its point as parameters and its metrics per epoch, in the experiment named after the study, by default in
an SQLite store in the study folder (MLflow 3's file store ``./mlruns`` refuses new data). ``wandb`` logs
to W&B through Ray's ``WandbLoggerCallback`` (project ``$WANDB_PROJECT`` or ``mtan-study``, group = the
study).

All of them run in the driver (the head of a cluster) and use the epoch as the step. Tune's own automatic
TensorBoard logger is switched off: it wrote a copy of the events into Ray's trial folders and made Tune
print a ``tensorboard --logdir`` hint pointing into Ray's temporary session folder.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback

from mtan.errors import UserError
from study.trainable import EPOCH_KEY, epoch_metrics, trial_name

LOGGERS: tuple[str, ...] = ("none", "tensorboard", "mlflow", "wandb")
DEFAULT_LOGGER = "tensorboard"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"  # the local store's artifact folder (nothing is logged there today)
WANDB_DEFAULT_PROJECT = "mtan-study"
# What installs each optional logger's package (the `mlflow` extra, see pyproject.toml).
_PACKAGES = {
    "mlflow": ("mlflow", "pip install 'mtan-study[mlflow]'"),
    "wandb": ("wandb", "pip install wandb"),
}
# Makes Tune add no TensorBoard logger of its own (it would also add CSV and JSON loggers, passed here).
_NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


def default_tracking_uri(study_dir: Path) -> str:
    """The MLflow store of a study when no tracking URI is given: ``STUDY/mlflow.db`` (SQLite)."""
    return f"sqlite:///{study_dir.resolve() / MLFLOW_DB}"


def check_logger(kind: str, tracking_uri: str | None = None) -> None:
    """Raise `UserError` naming the flag when ``--logger`` or ``--mlflow-tracking-uri`` cannot work."""
    if kind not in LOGGERS:
        raise UserError(f"--logger must be one of {', '.join(LOGGERS)}, got {kind!r}")
    if tracking_uri is not None and kind != "mlflow":
        raise UserError(f"--mlflow-tracking-uri needs --logger mlflow, got --logger {kind}")
    if kind in _PACKAGES:
        module, install = _PACKAGES[kind]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"--logger {kind}: {module} is not installed ({install})")


def dashboard_hints(
    kind: str, study_dir: Path, study_name: str, tracking_uri: str | None = None
) -> list[str]:
    """The commands that open the dashboards of study `study_name`, whose driver writes to `study_dir`,
    one line each (for the study's header)."""
    logdir = study_dir / TENSORBOARD_DIR
    hints = [] if kind == "none" else [f"TensorBoard: tensorboard --logdir {logdir}"]
    if kind == "mlflow":
        uri = tracking_uri or default_tracking_uri(study_dir)
        where = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else uri
        hints.append(f"MLflow: {where} (experiment {study_name})")
    if kind == "wandb":
        hints.append(f"W&B: project {_wandb_project()}, group {study_name}")
    return hints


def tune_callbacks(
    kind: str, study_dir: Path, study_name: str, tracking_uri: str | None = None
) -> list[tune.Callback]:
    """Tune's loggers for ``--logger kind`` of study `study_name`, whose driver writes to `study_dir` (the
    study folder, or its local staging folder for remote storage).

    Also Tune's CSV and JSON loggers (Ray's trial folders keep ``progress.csv`` and ``result.json``), as
    Tune's automatic loggers are switched off in this process (see the module's docstring).
    """
    check_logger(kind, tracking_uri)
    os.environ[_NO_AUTO_LOGGERS] = "1"
    callbacks: list[tune.Callback] = [CSVLoggerCallback(), JsonLoggerCallback()]
    if kind == "none":
        return callbacks
    callbacks.append(TrialEvents(study_dir / TENSORBOARD_DIR))
    if kind == "mlflow":
        from study.observe.tracking import StudyMLflow  # imports mlflow: only when asked for

        local_store = tracking_uri is None
        callbacks.append(
            StudyMLflow(
                tracking_uri or default_tracking_uri(study_dir),
                experiment_name=study_name,
                artifact_location=(study_dir / MLFLOW_ARTIFACTS).resolve().as_uri() if local_store else None,
            )
        )
    if kind == "wandb":
        from study.observe.tracking import StudyWandb

        study_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(StudyWandb(project=_wandb_project(), group=study_name, dir=str(study_dir)))
    return callbacks


class TrialEvents(LoggerCallback):
    """TensorBoard event files: ``LOGDIR/trial_NNN/`` per trial, its metrics per epoch, and at its end its
    point and last metrics for TensorBoard's HPARAMS tab."""

    def __init__(self, logdir: Path) -> None:
        self._logdir = logdir
        self._writers: dict[Any, Any] = {}
        self._last: dict[Any, dict[str, float]] = {}

    def log_trial_start(self, trial: Any) -> None:
        """Open the trial's event file (a resumed trial adds a new file to its folder)."""
        from tensorboardX import SummaryWriter

        if trial not in self._writers:
            self._writers[trial] = SummaryWriter(str(self._logdir / trial_name(trial)), flush_secs=30)
            self._last[trial] = {}

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        """One scalar per metric at step = the epoch, flushed so TensorBoard shows it now."""
        self.log_trial_start(trial)
        writer = self._writers[trial]
        metrics = epoch_metrics(result)
        for key, value in metrics.items():
            writer.add_scalar(key, value, global_step=result[EPOCH_KEY])
        writer.flush()
        self._last[trial] = metrics

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        """Write the trial's point with its last metrics (TensorBoard's HPARAMS) and close its file."""
        from tensorboardX.summary import hparams

        writer = self._writers.pop(trial, None)
        last = {k: v for k, v in self._last.pop(trial, {}).items() if math.isfinite(v)}
        if writer is None:
            return
        point = {k: v for k, v in trial.config.items() if isinstance(v, (str, bool, int, float))}
        if last:
            for summary in hparams(hparam_dict=point, metric_dict=last):
                writer.file_writer.add_summary(summary)
        writer.close()


def _wandb_project() -> str:
    return os.environ.get("WANDB_PROJECT") or WANDB_DEFAULT_PROJECT
