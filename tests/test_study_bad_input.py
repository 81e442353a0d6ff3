"""The study's commands on bad input: one line naming the file or flag, exit 2, nothing written changed."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mtan.files
import study.cluster
from mtan.errors import UserError
from study import run as study_run
from study.cluster import check_trial_fits, local_capacity
from study.reproduce import cli as reproduce
from tests.bad_input import refused, snapshot
from tests.conftest import WORKER_CPUS, tiny_study_args

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{"config": {"lr": 0.', "best_config.json: not valid JSON (Expecting ',' delimiter, line 1)"),
        ("", "best_config.json: not valid JSON (Expecting value, line 1)"),
        ('{"trial_id": "x"}', "best_config.json: expected a JSON object with the best trial's config"),
        ('{"config": {"lr": "fast"}}', "best_config.json: lr must be a number, got 'fast'"),
        ('{"config": {"batch_size": 1.5}}', "best_config.json: batch_size must be an integer, got 1.5"),
    ],
)
def test_reproduce_refuses_a_broken_best_config(tmp_path, capsys, text, line):
    (tmp_path / "best_config.json").write_text(text)
    before = snapshot(tmp_path)
    code, error = refused(reproduce.main, [str(tmp_path)], capsys)
    assert (code, error) == (2, f"error: {tmp_path}/{line}")
    assert snapshot(tmp_path) == before


def test_a_trial_larger_than_any_node_of_a_fixed_cluster_is_refused(ray_cluster):
    check_trial_fits(WORKER_CPUS, 0)
    # the session's cluster has two 1-CPU nodes: two CPUs in all, but never on one node
    with pytest.raises(UserError) as too_many_cpus:
        check_trial_fits(2 * WORKER_CPUS, 0)
    assert str(too_many_cpus.value) == (
        "--cpus-per-trial 2: no node of this Ray cluster has 2 CPUs (the largest has 1), "
        "and it has no autoscaler to add one"
    )
    with pytest.raises(
        UserError, match=r"^--gpus-per-trial 0.5: no node .* has 0.5 GPUs \(the largest has 0\)"
    ):
        check_trial_fits(1, 0.5)


def test_a_cluster_with_an_autoscaler_may_grow_to_fit(ray_cluster, tmp_path, monkeypatch):
    launcher_config = tmp_path / "ray_bootstrap_config.yaml"
    launcher_config.write_text("cluster_name: x\n")
    monkeypatch.setattr(study.cluster, "AUTOSCALER_CONFIG", launcher_config)
    check_trial_fits(100, 8)


def _tiny_study(tiny_root, storage, name, *extra):
    return tiny_study_args(tiny_root, storage, name, "--num-samples", "1", "--max-epochs", "1", *extra)


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("lr=fast", "error: --set lr=fast: lr must be a number, got 'fast'"),
        ("batch_size=1.5", "error: --set batch_size=1.5: batch_size must be an integer, got 1.5"),
        ("amp=1", "error: --set amp=1: amp must be true or false, got 1"),
        ("width=NaN", "error: --set width=nan: width must be a finite number, got nan"),
    ],
)
def test_a_set_value_of_the_wrong_type_is_one_line_before_ray(tiny_root, tmp_path, capsys, setting, line):
    code, error = refused(study_run.main, _tiny_study(tiny_root, tmp_path, "s", "--set", setting), capsys)
    assert (code, error) == (2, line)
    assert not any(tmp_path.iterdir())


def test_a_storage_path_that_is_a_file_is_refused(tiny_root, tmp_path, capsys):
    storage = tmp_path / "taken"
    storage.write_text("a file")
    code, error = refused(study_run.main, _tiny_study(tiny_root, storage, "s"), capsys)
    assert (code, error) == (2, f"error: --storage-path: {storage} is a file, not a folder")
    assert storage.read_text() == "a file"


def test_a_read_only_storage_path_is_refused(tiny_root, tmp_path, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(mtan.files.tempfile, "mkstemp", read_only)
    code, error = refused(study_run.main, _tiny_study(tiny_root, tmp_path, "s"), capsys)
    assert (code, error) == (2, f"error: --storage-path: cannot write into {tmp_path}: Read-only file system")


@pytest.mark.parametrize(
    ("study_json", "line"),
    [
        ('{"settings": {"name": "s", "num_', "study.json: not valid JSON (Unterminated string"),
        (
            json.dumps({"settings": {"name": "s", "num_samples": "many", "weightings": ["equal"]}}),
            "study.json: the recorded settings are refused (--num-samples must be an integer, got 'many')",
        ),
        (
            json.dumps({"settings": {"name": "s", "overrides": {"lr": "fast"}, "weightings": ["equal"]}}),
            "study.json: the recorded settings are refused (--set lr=fast: lr must be a number, got 'fast')",
        ),
        (
            json.dumps({"settings": {"name": "s"}}),  # neither its settings nor a space name the weightings
            "study.json: the recorded settings are refused (no weighting methods: neither "
            "settings.weightings nor the space's column",
        ),
    ],
)
def test_a_corrupt_study_json_is_refused_on_resume(tmp_path, capsys, study_json, line):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text(study_json)
    before = snapshot(tmp_path)
    argv = ["--resume", "--storage-path", str(tmp_path), "--name", "s"]
    code, error = refused(study_run.main, argv, capsys)
    assert code == 2 and error.startswith(f"error: {tmp_path}/s/{line}")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--cpus-per-trial", "2"],
            "error: --cpus-per-trial 2: no node of this Ray cluster has 2 CPUs (the largest has 1), "
            "and it has no autoscaler to add one",
        ),
        (
            ["--gpus-per-trial", "1"],
            "error: --gpus-per-trial 1: no node of this Ray cluster has 1 GPU (the largest has 0), "
            "and it has no autoscaler to add one",
        ),
    ],
)
def test_a_trial_no_node_can_hold_fails_at_once(ray_cluster, tiny_root, tmp_path, capsys, flags, line):
    code, error = refused(study_run.main, _tiny_study(tiny_root, tmp_path, "s", *flags), capsys)
    assert (code, error) == (2, line)
    assert not any(tmp_path.iterdir())


def test_reproduce_refuses_a_seed_no_node_can_hold(ray_cluster, finished_study, capsys):
    before = snapshot(finished_study)
    code, error = refused(reproduce.main, [str(finished_study), "--cpus-per-task", "2"], capsys)
    assert (code, error) == (
        2,
        "error: --cpus-per-task 2: no node of this Ray cluster has 2 CPUs (the largest has 1), "
        "and it has no autoscaler to add one",
    )
    assert snapshot(finished_study) == before


def _command(module: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m module argv` as a user runs it: no Ray address in the environment, so it would start
    its own Ray."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", module, *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["empty data root", "more CPUs than this machine"])
def test_the_study_refuses_before_ray_starts_and_before_it_writes(tmp_path, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    storage = tmp_path / "results"
    if case == "empty data root":
        flags = ["--data-root", str(empty)]
        line = f"error: {empty}/train: missing split folder (expected the MTAN layout root/train/...)"
    else:
        flags = ["--cpus-per-trial", "1000"]
        line = (
            f"error: --cpus-per-trial 1000: this machine has {local_capacity()['CPU']:g} CPUs for the Ray "
            "instance the command starts (join a larger cluster with --address)"
        )
    done = _command("study.run", [*flags, "--storage-path", str(storage), "--name", "s"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line + "\n")  # nothing of Ray's
    assert not storage.exists()  # no storage folder, no study folder, no study.lock


def test_reproduce_refuses_a_cut_results_csv_and_a_seed_larger_than_this_machine_before_ray(
    finished_study, tmp_path
):
    study = Path(shutil.copytree(finished_study, tmp_path / finished_study.name))
    before = snapshot(study)
    cpus = f"{local_capacity()['CPU']:g}"
    done = _command("study.reproduce", [str(study), "--cpus-per-task", "1000"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"error: --cpus-per-task 1000: this machine has {cpus} CPUs for the Ray instance the command starts "
        "(join a larger cluster with --address)\n",
    )
    (study / "results.csv").write_bytes((study / "results.csv").read_bytes()[:1500])  # `head -c 1500`
    done = _command("study.reproduce", [str(study), "--top", "2"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    cut = r"results.csv: cut off in its last row \(row \d+ has no end of line\)\n"
    assert re.fullmatch(f"error: {re.escape(str(study))}/{cut}", done.stderr)
    before["results.csv"] = (study / "results.csv").read_bytes()
    assert snapshot(study) == before


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--objectives", "miou,accuracy"],
            "error: --objectives: unknown metric 'accuracy'; each must be one of miou, pixel_acc, miou_2019, "
            "pixel_acc_2019, miou_2020, abs_err, rel_err, abs_err_batch_mean, rel_err_batch_mean, score",
        ),
        (
            ["--objectives", "miou"],
            "error: --objectives needs two or more metrics, got 'miou' (a single objective is --metric)",
        ),
        (
            ["--objectives", "miou,abs_err,miou"],
            "error: --objectives names miou twice; give each metric once",
        ),
        (["--sampler", "cmaes"], "error: --sampler must be one of tpe, nsga2, got cmaes"),
        (
            ["--sampler", "nsga2"],
            "error: --sampler nsga2 searches a multi-objective study: it needs --objectives",
        ),
    ],
)
def test_bad_objectives_and_samplers_are_one_line_before_anything(tiny_root, tmp_path, capsys, flags, line):
    code, error = refused(study_run.main, _tiny_study(tiny_root, tmp_path, "s", *flags), capsys)
    assert (code, error) == (2, line)
    assert not any(tmp_path.iterdir())


def test_nsga2_cannot_tune_each_weighting_on_its_own(tiny_root, tmp_path, capsys):
    flags = ["--per-weighting", "2", "--objectives", "miou,abs_err", "--sampler", "nsga2"]
    code, error = refused(study_run.main, tiny_study_args(tiny_root, tmp_path, "s", *flags), capsys)
    assert (code, error) == (
        2,
        "error: --sampler nsga2 draws a trial's whole point at once, before its weighting is known, so it "
        "cannot tune each weighting method on its own (--per-weighting): use tpe",
    )
    assert not any(tmp_path.iterdir())


def test_bad_objectives_end_the_command_before_ray_starts(tmp_path):
    storage = tmp_path / "results"
    done = _command("study.run", ["--objectives", "miou,miou", "--storage-path", str(storage)], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "error: --objectives names miou twice; give each metric once\n",
    )
    assert not storage.exists()
