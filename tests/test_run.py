"""`python -m study.run`: a whole small study, bad flags, a diverging trial, SIGINT then --resume."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import study.cluster
import study.run
from mtan.errors import UserError, run_cli
from study.driver import run_study
from study.lock import LOCK_FILE, StudyLock
from study.run import best_trials_table, build_parser, finished_lines, main, said_its_last, settings_from_args
from study.search.journal import journal_storage
from study.settings import StudySettings
from study.space import SearchSpace
from study.trainable import DEFAULT_CHECKPOINT_EVERY
from tests.conftest import TINY_SET, tiny_study_args

REPO = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def journal_trials(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = journal_storage(study_dir / "optuna.journal")
    return optuna.load_study(study_name=study_dir.name, storage=storage).trials


def tiny_settings(tiny_root: Path, storage: Path, name: str, **values: Any) -> StudySettings:
    """The settings of a study on the tiny set (`TINY_SET` as its overrides), with `values` besides."""
    overrides = tuple(sorted((k, json.loads(v)) for k, v in (item.split("=") for item in TINY_SET)))
    return StudySettings(
        name=name, storage_path=str(storage), data_root=str(tiny_root), overrides=overrides, **values
    )


def test_a_small_study_writes_every_trial_with_its_state(finished_study):
    table = pd.read_csv(finished_study / "results.csv")
    study = json.loads((finished_study / "study.json").read_text())
    assert list(table["trial"]) == [0, 1, 2, 3, 4] and table["trial_id"].is_unique
    assert study["status"] == "finished" and study["runs"] == 1 and study["wall_seconds"] > 0
    assert set(table["state"]) <= {"completed", "stopped_early"}
    # the two published configurations are the first two trials
    first = table.iloc[:2]
    assert list(first["weighting"]) == ["equal", "dwa"] and list(first["weight_decay"]) == [0.0, 1e-4]
    assert study["states"]["completed"] == (table["epochs"] == 4).sum() >= 1
    assert study["epochs_trained"] == table["epochs"].sum() <= study["epochs_budget"] == 20
    assert list(table["trial"]) == list(range(5))  # Optuna's trial numbers, in the order of creation
    assert list(study["space"]["labels"]) == ["weighting", "temperature", "depth_share_logit",
                                               "use_weight_decay", "weight_decay", "step_fraction",
                                               "gamma"]  # fmt: skip
    for number, epochs in zip(table["trial"], table["epochs"], strict=True):
        lines = (finished_study / "trials" / f"trial_{number:03d}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))
    assert sorted(p.name for p in (finished_study / "trials").iterdir()) == [
        f"trial_{n:03d}" for n in range(5)
    ]


def test_best_config_is_the_best_completed_trial(finished_study):
    table = pd.read_csv(finished_study / "results.csv")
    best = json.loads((finished_study / "best_config.json").read_text())
    completed = table[table["state"] == "completed"]
    assert best["trial_id"] == completed.loc[completed["last_score"].idxmax(), "trial_id"]
    assert best["metric"] == "score" and best["mode"] == "max" and best["config"]["epochs"] == 4


def test_optuna_agrees_with_results_csv_on_numbers_states_and_last_metrics(finished_study):
    table = pd.read_csv(finished_study / "results.csv").set_index("trial")
    trials = journal_trials(finished_study)
    expected = {"completed": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED}
    assert [t.number for t in trials] == list(table.index)
    for trial in trials:
        row = table.loc[trial.number]
        assert trial.state == expected[row["state"]]
        assert sorted(trial.intermediate_values) == list(range(1, row["epochs"] + 1))  # the last one too
        assert trial.user_attrs["ray_trial_id"] == row["trial_id"]
        assert trial.user_attrs["epoch"] == row["epochs"]
        assert trial.user_attrs["score"] == pytest.approx(row["last_score"])
        assert trial.user_attrs["miou"] == pytest.approx(row["last_miou"])


def test_bad_flags_are_one_line_errors(ray_cluster, tmp_path):
    with pytest.raises(UserError, match="--num-samples"):
        main(["--num-samples", "0", "--storage-path", str(tmp_path)])
    with pytest.raises(UserError, match="--grace-period"):
        main(["--max-epochs", "2", "--grace-period", "3", "--storage-path", str(tmp_path)])
    with pytest.raises(UserError, match="--set cannot change weighting"):
        main(["--set", "weighting=dwa", "--storage-path", str(tmp_path)])
    with pytest.raises(UserError, match="unknown config key"):
        main(["--set", "colour=red", "--storage-path", str(tmp_path)])
    with pytest.raises(UserError, match="--reduction-factor"):
        main(["--reduction-factor", "0", "--storage-path", str(tmp_path)])
    with pytest.raises(UserError, match="--cpus-per-trial"):
        main(["--cpus-per-trial", "0", "--storage-path", str(tmp_path)])
    with pytest.raises(UserError, match="--metric"):
        main(["--metric", "accuracy", "--storage-path", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_command_line_reports_bad_flags_in_one_line_without_starting_ray(tmp_path):
    command = [sys.executable, "-m", "study.run", "--num-samples", "0", "--storage-path", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "error: --num-samples must be at least 1, got 0"


def test_an_existing_study_is_not_overwritten(finished_study):
    before = (finished_study / "results.csv").read_text()
    with pytest.raises(UserError, match="a study exists there"):
        main(["--storage-path", str(finished_study.parent), "--name", finished_study.name])
    assert (finished_study / "results.csv").read_text() == before


@pytest.mark.filterwarnings("ignore:Fixed parameter lr")
def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(ray_cluster, tiny_root, tmp_path):
    settings = tiny_settings(
        tiny_root, tmp_path, "nan", num_samples=3, max_epochs=2, grace_period=2, tune_lr=True
    )
    paper, report = SearchSpace(tune_lr=True).published_points()
    outcome = run_study(settings, points=[{**paper, "lr": 1e12}, report])  # the first one diverges
    table = outcome.table.set_index("trial_id")
    assert len(table) == 3
    failed = table[table["state"] == "failed"]
    assert len(failed) >= 1 and (table["state"] == "completed").sum() >= 1
    first = table.iloc[0]
    assert first["state"] == "failed" and first["lr"] == 1e12 and first["trial"] == 0
    assert "TrainingDiverged" in first["error"] and "loss became" in first["error"]
    states = [t.state for t in journal_trials(tmp_path / "nan")]
    assert states.count(TrialState.FAIL) == len(failed)


class PlantedPickle:
    """A pickle that, when loaded, creates `marker`: what a stranger who can write the storage path plants."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_sigint_then_resume_keeps_finished_trials_and_duplicates_none(ray_cluster, tiny_root, tmp_path):
    args = tiny_study_args(tiny_root, tmp_path, "intr", "--num-samples", "6", "--max-epochs", "3")
    args += ["--grace-period", "3", "--max-concurrent", "1", "--address", ray_cluster.address]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "study.run", *args]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: list[str] = []
    try:
        while sum("completed after" in line for line in lines) < 2:
            line = process.stdout.readline().decode()
            assert line, "the study ended before it was interrupted:\n" + "".join(lines)
            lines.append(line)
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0].decode()
    finally:
        process.kill()
    assert process.returncode == 130, "".join(lines) + output
    assert "--resume" in output and said_its_last(output)
    assert not (tmp_path / "intr" / "results.csv").exists()
    finished_before = {
        int(m.group(1)) for line in lines if (m := re.search(r"trial (\d+) +completed after", line))
    }
    assert len(finished_before) == 2
    assert json.loads((tmp_path / "intr" / "study.json").read_text())["status"] == "interrupted"
    marker = tmp_path / "pickle-ran"
    for folder in (tmp_path / "intr", *(tmp_path / "intr" / "ray").glob("run_*")):
        for name in ("tuner.pkl", "searcher-state-2026-01-01_00-00-00.pkl", "experiment_state.pkl"):
            (folder / name).write_bytes(pickle.dumps(PlantedPickle(marker)))

    assert main(["--resume", "--storage-path", str(tmp_path), "--name", "intr"]) == 0
    assert not marker.exists()  # a resume unpickles nothing from the storage path
    table = pd.read_csv(tmp_path / "intr" / "results.csv")
    assert list(table["trial"]) == list(range(6))
    assert finished_before <= set(table["trial"])
    assert (table["state"] == "completed").all()
    trials = journal_trials(tmp_path / "intr")
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)


def test_a_study_recorded_before_a_weighting_was_registered_resumes_with_its_own(
    ray_cluster, tiny_root, tmp_path
):
    # a study of equal and DWA only, as one started before scalarization was registered: its journal's
    # weighting choices are those two, and its study.json holds them only in its space; left as an
    # interrupt after two trials of three leaves it
    two = tiny_settings(
        tiny_root, tmp_path, "old", num_samples=2, max_epochs=1, grace_period=1, weightings=("equal", "dwa")
    )
    assert run_study(two).finished
    folder = tmp_path / "old"
    recorded = json.loads((folder / "study.json").read_text())
    assert recorded["space"]["columns"][0]["searched"] == ["equal", "dwa"]
    older = {k: v for k, v in recorded["settings"].items() if k != "weightings"}
    interrupted = {
        **recorded,
        "status": "interrupted",
        "num_samples": 3,
        "settings": {**older, "num_samples": 3},
    }
    (folder / "study.json").write_text(json.dumps(interrupted))
    (folder / "results.csv").unlink()
    (folder / "best_config.json").unlink()

    assert main(["--resume", "--storage-path", str(tmp_path), "--name", "old"]) == 0
    table = pd.read_csv(folder / "results.csv")
    assert list(table["trial"]) == [0, 1, 2] and set(table["weighting"]) <= {"equal", "dwa"}
    assert "depth_share" not in table.columns
    assert json.loads((folder / "study.json").read_text())["settings"]["weightings"] == ["equal", "dwa"]


@pytest.mark.parametrize("name", [".", "..", "a/b", ".hidden", "x" * 101, "two words", "x;y"])
def test_a_name_must_be_a_plain_folder_name(tmp_path, name):
    with pytest.raises(UserError, match="--name must be a plain folder name"):
        main(["--name", name, "--storage-path", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_a_folder_that_is_not_a_study_is_refused_untouched(ray_cluster, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("my own file\n")
    with pytest.raises(UserError, match="is not a study of this tool"):
        main(["--name", "mine", "--storage-path", str(tmp_path)])
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["results.csv"]
    assert (tmp_path / "mine" / "results.csv").read_text() == "my own file\n"


def test_resume_needs_an_existing_study(ray_cluster, tmp_path):
    with pytest.raises(UserError, match="no study.json"):
        main(["--resume", "--name", "nothing", "--storage-path", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_study_in_use_by_another_driver_is_refused_untouched(finished_study):
    before = {p: p.read_bytes() for p in finished_study.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    args = ["--storage-path", str(finished_study.parent), "--name", finished_study.name]
    with StudyLock(finished_study):  # what a running driver holds
        with pytest.raises(UserError, match="in use by another driver"):
            main(["--resume", *args])
        with pytest.raises(UserError, match="a study exists there"):
            main(args)
    after = {p: p.read_bytes() for p in finished_study.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    assert after == before


def test_a_second_driver_is_refused_in_one_line_before_ray_starts(tiny_root, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "busy"
    folder.mkdir()
    settings = StudySettings(name="busy", storage_path=str(tmp_path), data_root=str(tiny_root))
    (folder / "study.json").write_text(json.dumps({"status": "running", "settings": settings.to_json()}))
    started = []
    starts = lambda address: started.append(address)  # noqa: E731 - Ray's start
    monkeypatch.setattr(study.run, "connect_interruptible", starts)
    argv = ["--resume", "--storage-path", str(tmp_path), "--name", "busy"]
    with StudyLock(folder):  # what a running driver holds
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        holder = (folder / LOCK_FILE).read_text().strip()
        with pytest.raises(SystemExit) as done:
            run_cli(main, argv)
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert holder.startswith(f"pid {os.getpid()} on {socket.gethostname()} since ")
    assert done.value.code == 2 and started == []
    assert capsys.readouterr().err.splitlines() == [
        f"error: {folder}: the study is in use by another driver ({holder}); nothing was changed; wait for "
        "it to end or stop it first"
    ]


def test_ray_shuts_down_with_interrupts_ignored(monkeypatch):
    # main calls this after the study's files and last line: an interrupt would only cut Ray's
    # clean-up short (and Ray's core sets SIGTERM back to its default action meanwhile)
    seen = {}

    def shutdown() -> None:
        seen.update(sigint=signal.getsignal(signal.SIGINT), sigterm=signal.getsignal(signal.SIGTERM))

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(study.cluster.ray, "shutdown", shutdown)
    try:
        study.cluster.shutdown_ray()
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert seen == {"sigint": signal.SIG_IGN, "sigterm": signal.SIG_IGN}


def test_defaults_by_preset():

    cpu = settings_from_args(build_parser().parse_args(["--set", "max_train_images=16"]))
    assert (cpu.num_samples, cpu.max_epochs, cpu.grace_period, cpu.reduction_factor) == (20, 24, 3, 4)
    assert dict(cpu.overrides)["max_train_images"] == 16 and dict(cpu.overrides)["image_height"] == 32
    assert cpu.gpus_per_trial == 0 and cpu.metric == "score" and cpu.mode == "max"
    assert cpu.checkpoint_every == DEFAULT_CHECKPOINT_EVERY
    paper = settings_from_args(build_parser().parse_args(["--preset", "paper", "--metric", "abs_err"]))
    assert (paper.max_epochs, paper.grace_period, paper.overrides, paper.mode) == (200, 12, (), "min")


def test_the_best_trials_table_shows_a_dash_where_a_value_does_not_apply():
    space = SearchSpace()
    rows = [
        {
            "trial": 0,
            "state": "completed",
            "epochs": 4,
            "last_score": 0.5,
            "last_miou": 0.4,
            "last_abs_err": 0.1,
        },
        {
            "trial": 1,
            "state": "completed",
            "epochs": 4,
            "last_score": 0.6,
            "last_miou": 0.5,
            "last_abs_err": 0.1,
        },
    ]
    points = [
        {"weighting": "equal", "use_weight_decay": False, "step_fraction": 0.5, "gamma": 0.5},
        {
            "weighting": "dwa",
            "temperature": 2.0,
            "use_weight_decay": False,
            "step_fraction": 0.5,
            "gamma": 0.5,
        },
    ]
    table = pd.DataFrame([{**row, **space.column_values(p, 4)} for row, p in zip(rows, points, strict=True)])
    text = best_trials_table(table, "score", "max", space)
    assert "NaN" not in text
    best, other = text.splitlines()[1:3]
    assert best.split()[:5] == ["1", "completed", "4", "dwa", "2"]  # the better trial first, with its T
    assert other.split()[:5] == ["0", "completed", "4", "equal", "-"]  # no temperature for equal


def test_per_weighting_gives_each_method_n_trials_across_a_kill_and_a_resume(
    ray_cluster, tiny_root, tmp_path
):
    args = tiny_study_args(tiny_root, tmp_path, "pw", "--per-weighting", "2", "--max-epochs", "2")
    args += ["--grace-period", "1", "--reduction-factor", "2", "--max-concurrent", "1"]
    command = [sys.executable, "-m", "study.run", *args, "--address", ray_cluster.address]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        while not any("completed after" in line or "stopped early" in line for line in lines):
            line = process.stdout.readline().decode()
            assert line, "the study ended before it was killed:\n" + "".join(lines)
            lines.append(line)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver, as when its machine is lost
        process.wait()
    folder = tmp_path / "pw"
    before = {t.number: t.params for t in journal_trials(folder) if t.params}
    assert not (folder / "results.csv").exists() and 0 in before

    assert main(["--resume", "--storage-path", str(tmp_path), "--name", "pw"]) == 0
    weightings = list(SearchSpace().weightings)
    table = pd.read_csv(folder / "results.csv")
    assert table["weighting"].value_counts().to_dict() == dict.fromkeys(weightings, 2)
    assert list(table["weighting"][:2]) == ["equal", "dwa"]  # the published configurations count in
    trials = journal_trials(folder)
    assert {t.number: t.params for t in trials if t.number in before} == before  # no point changed
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)  # none repeated
    study = json.loads((folder / "study.json").read_text())
    assert study["design"] == {"per_weighting": 2, "weightings": weightings}
    assert (study["num_samples"], study["runs"]) == (2 * len(weightings), 2)


def test_num_samples_and_per_weighting_are_exclusive(tmp_path):
    with pytest.raises(UserError, match="--num-samples and --per-weighting are exclusive"):
        main(["--num-samples", "4", "--per-weighting", "2", "--storage-path", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_the_study_prints_its_own_lines_only_imports_no_mlflow_and_ends_with_the_next_commands(
    ray_cluster, tiny_root, tmp_path
):
    args = tiny_study_args(tiny_root, tmp_path, "quiet", "--num-samples", "1", "--max-epochs", "1")
    command = [sys.executable, "-X", "importtime", "-m", "study.run", *args, "--address", ray_cluster.address]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("MTAN study: ")
    for tune_says in ("Configuration for experiment", "View detailed results", "Trial status", "╭"):
        assert tune_says not in done.stdout
    folder = tmp_path / "quiet"
    assert lines[-4:] == [
        f"results: {folder}",
        "trials: 1 completed, 0 stopped early, 0 failed",
        f"next: python -m study.reproduce {folder} --top 2   (the best 2 and the published ones, new seeds)",
        f"      python -m analysis.report {folder}   (the report)",
    ]
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line
    ]
    assert "ray.tune" in imported  # -X importtime lists the driver's imports...
    assert not [name for name in imported if name.split(".")[0] == "mlflow"]  # ... and MLflow is not one


def test_a_study_whose_every_trial_failed_ends_with_one_line_and_the_most_common_reason():
    settings = StudySettings(name="x")
    table = pd.DataFrame(
        {
            "trial": [0, 1, 2],
            "state": ["failed"] * 3,
            "epochs": [0, 0, 1],
            "error": ["A: nan", "B: oom", "A: nan"],
            "restarts": [1, 0, 2],
        }
    )
    assert finished_lines(table, settings, "/r/x") == [
        "results: /r/x",
        "trials: 0 completed, 0 stopped early, 3 failed; 3 restarts (results.csv)",
        "every trial failed; the most common reason (2 of 3): A: nan",
    ]


def test_a_per_weighting_study_suggests_confirming_each_methods_best():
    table = pd.DataFrame(
        {"trial": [0, 1], "state": ["completed", "failed"], "epochs": [1, 0], "last_score": [0.5, None]}
    )
    table = table.assign(last_miou=0.4, last_abs_err=0.1, error=[None, "A: nan"], restarts=0)
    table = table.assign(**SearchSpace().column_values({}, 1))
    for per_weighting, confirm in ((None, "--top 2 "), (2, "--per-weighting-best 1 ")):
        settings = StudySettings(name="x", per_weighting=per_weighting)
        lines = finished_lines(table, settings, "/r/x")
        assert lines[-2].startswith(f"next: python -m study.reproduce /r/x {confirm}")
        assert sum("study.reproduce" in line for line in lines) == 1
    # a study of two objectives: --pareto where it has a front, else what study.reproduce would not refuse
    table = table.assign(tail_miou=0.4, tail_abs_err=0.1)
    for pareto, confirm in (([True, False], "--pareto "), ([False, False], "--top 2 ")):
        settings = StudySettings(name="x", objectives="miou,abs_err")
        lines = finished_lines(table.assign(pareto=pareto), settings, "/r/x")
        assert lines[-2].startswith(f"next: python -m study.reproduce /r/x {confirm}")
