"""The study's dashboards (`study.observe.loggers`): a real Tune run of 3 trials x 3 epochs with the
callbacks, then the MLflow store and the TensorBoard event files read back offline, against the reported
values."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import struct
import sys
from pathlib import Path

import pytest
import ray.cloudpickle
from ray import tune

from mtan.errors import UserError
from study.observe.loggers import (
    TENSORBOARD_DIR,
    check_logger,
    dashboard_hints,
    default_tracking_uri,
    tune_callbacks,
)
from study.space import TRIAL_NUMBER
from study.trainable import trial_name

TRIALS = 3
EPOCHS = 3
HAS_WANDB = importlib.util.find_spec("wandb") is not None


def reported(number: int, epoch: int) -> dict[str, float]:
    """What trial `number` reports in `epoch` (the test's own formula)."""
    return {"score": number + epoch / 10, "loss/total": 1.0 / (number + epoch)}


# Ray's workers cannot import this module by name (pytest imports it as a file): ship its code along.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def trainable(config: dict) -> None:
    first = config.get("first_epoch", 1)  # > 1: a trial continued from its checkpoint
    for epoch in range(first, first + EPOCHS):
        tune.report({"epoch": epoch, **reported(config[TRIAL_NUMBER], epoch)})


def run_study(study_dir: Path, kind: str, name: str = "my-study", **point: int) -> None:
    """3 trials of `trainable` through the study's loggers, named as the driver names them."""
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={
            TRIAL_NUMBER: tune.grid_search(list(range(TRIALS))),
            "weighting": "dwa",
            "gamma": 0.5,
            **point,
        },
        tune_config=tune.TuneConfig(trial_name_creator=trial_name),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str(study_dir),
            callbacks=tune_callbacks(kind, study_dir, name),
            verbose=0,
        ),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0 and grid.num_terminated == TRIALS


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of a folder's event files: TFRecord frames (length, crc, event, crc) of Event protos."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="module", autouse=True)
def tunes_own_loggers_back_after_this_module():
    """`tune_callbacks` switches Tune's automatic loggers off in this process; other tests expect them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")  # Tune's default; restored after
        yield


@pytest.fixture(scope="module")
def printed_and_study(ray_cluster, tmp_path_factory) -> tuple[str, Path]:
    """What the Tune run of a study with ``--logger mlflow`` printed, and its folder."""
    study_dir = tmp_path_factory.mktemp("studies") / "staged-my-study"  # a folder not named as the study
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        run_study(study_dir, "mlflow", "my-study")
    return printed.getvalue(), study_dir


@pytest.fixture(scope="module")
def mlflow_study(printed_and_study) -> Path:
    return printed_and_study[1]


def test_mlflow_holds_one_run_per_trial_with_its_metrics_per_epoch(mlflow_study):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=default_tracking_uri(mlflow_study))
    experiment = client.get_experiment_by_name("my-study")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["trial_000", "trial_001", "trial_002"]
    for run in runs:
        number = int(run.info.run_name.removeprefix("trial_"))
        assert run.info.status == "FINISHED"
        assert run.data.params == {TRIAL_NUMBER: str(number), "weighting": "dwa", "gamma": "0.5"}
        assert set(run.data.metrics) == {"score", "loss/total"}
        for key in ("score", "loss/total"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
            expected = {epoch: reported(number, epoch)[key] for epoch in range(1, EPOCHS + 1)}
            assert {m.step: m.value for m in history} == pytest.approx(expected)


def test_tensorboard_events_per_trial_in_the_study_folder_only(mlflow_study):
    logdir = mlflow_study / TENSORBOARD_DIR
    assert sorted(p.name for p in logdir.iterdir()) == ["trial_000", "trial_001", "trial_002"]
    for number in range(TRIALS):
        scalars = read_scalars(logdir / f"trial_{number:03d}")
        assert set(scalars) == {"score", "loss/total"}
        for key, values in scalars.items():
            assert [step for step, _ in values] == list(range(1, EPOCHS + 1))
            expected = [reported(number, epoch)[key] for epoch in range(1, EPOCHS + 1)]
            assert [value for _, value in values] == pytest.approx(expected, rel=1e-6)  # float32
    # Tune's own loggers write no second copy into Ray's trial folders, but still their CSV and JSON
    ray_trials = [p for p in (mlflow_study / "ray").iterdir() if p.is_dir()]
    assert len(ray_trials) == TRIALS
    for folder in ray_trials:
        assert (folder / "result.json").is_file() and (folder / "progress.csv").is_file()
        assert not list(folder.glob("events.out.tfevents.*"))


def test_tune_prints_no_tensorboard_hint_into_rays_session_folder(printed_and_study):
    printed, study_dir = printed_and_study
    assert f"View detailed results here: {study_dir}" in printed  # Tune's lines are in `printed`
    assert "tensorboard --logdir" not in printed


class FakeTrial:
    """What the loggers read of a Tune trial (hashable by identity, as Tune's)."""

    def __init__(self, config: dict, trial_id: str) -> None:
        self.config = config
        self.trial_id = trial_id


def test_a_resumed_trial_logs_to_its_mlflow_run_again(tmp_path):
    from mlflow.tracking import MlflowClient

    study_dir = tmp_path / "resumed"
    trial = FakeTrial(config={TRIAL_NUMBER: 7, "gamma": 0.5}, trial_id="abc_00007")
    for epoch in (1, 2):  # two drivers: the study, then its resume with fresh callbacks
        callbacks = tune_callbacks("mlflow", study_dir, "resumed")
        (callback,) = [c for c in callbacks if type(c).__name__ == "StudyMLflow"]
        callback.setup()
        callback.log_trial_start(trial)
        callback.log_trial_result(epoch, trial, {"epoch": epoch, "score": epoch / 10})
    client = MlflowClient(tracking_uri=default_tracking_uri(study_dir))
    (run,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id])
    assert run.info.run_name == "trial_007"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "score")] == [
        (1, 0.1),
        (2, 0.2),
    ]


def test_bad_logger_flags_are_one_line_errors(monkeypatch):
    with pytest.raises(UserError, match=r"^--logger must be one of none, tensorboard, mlflow, wandb"):
        check_logger("comet")
    with pytest.raises(UserError, match=r"^--mlflow-tracking-uri needs --logger mlflow"):
        check_logger("tensorboard", "http://127.0.0.1:5000")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(UserError, match=r"^--logger mlflow: mlflow is not installed \(pip install"):
        check_logger("mlflow")


@pytest.mark.skipif(HAS_WANDB, reason="wandb is installed: the offline run below checks it")
def test_wandb_without_wandb_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match=r"^--logger wandb: wandb is not installed \(pip install wandb\)$"):
        tune_callbacks("wandb", tmp_path, "s")


def wandb_history(run: Path) -> dict[str, set[str]]:
    """Each key a W&B offline run logged with its values as JSON text, read from its ``.wandb`` file: a
    history item is a protobuf message with the key as field 2 and the value's JSON as field 16."""
    data = next(run.glob("run-*.wandb")).read_bytes()
    logged: dict[str, set[str]] = {}
    for item in re.finditer(rb"\x12([\x01-\x7f])", data):
        end = item.end() + item.group(1)[0]
        if data[end : end + 2] == b"\x82\x01" and end + 3 < len(data):
            value = data[end + 3 : end + 3 + data[end + 2]]
            logged.setdefault(data[item.end() : end].decode(errors="replace"), set()).add(value.decode())
    return logged


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed")
def test_wandb_offline_run_per_trial_named_by_its_number(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # set after Ray started: the callback passes it on
    study_dir = tmp_path / "wandb-study"
    run_study(study_dir, "wandb", first_epoch=5)  # continued trials: epochs 5..7, Tune's iterations 1..3
    runs = sorted((study_dir / "wandb").glob("offline-run-*"))
    names = sorted(sorted(set(re.findall(rb"trial_\d{3}", next(run.glob("run-*.wandb")).read_bytes())))
                   for run in runs)  # fmt: skip
    assert names == [[b"trial_000"], [b"trial_001"], [b"trial_002"]]
    for run in runs:
        history = wandb_history(run)
        assert history["_step"] == {"5", "6", "7"}  # the epochs
        assert {"score", "loss/total"} <= history.keys() and "time_this_iter_s" not in history  # Ray's own


def test_dashboard_hints_name_the_study_folder(tmp_path):
    study = tmp_path / "s1"
    assert dashboard_hints("none", study, "s1") == []
    tensorboard = dashboard_hints("tensorboard", study, "s1")
    assert tensorboard == [f"TensorBoard: tensorboard --logdir {study}/tensorboard"]
    local = dashboard_hints("mlflow", study, "s1")
    server = dashboard_hints("mlflow", study, "s1", "http://mlflow:5000")
    assert local[1] == f"MLflow: mlflow ui --backend-store-uri sqlite:///{study}/mlflow.db (experiment s1)"
    assert server[1] == "MLflow: http://mlflow:5000 (experiment s1)"
