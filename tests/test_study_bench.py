"""The study benchmark's accounting: trial times from Ray's records, processes and their memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from devtools.driver_bench import EPOCHS, driver_figures, format_run
from devtools.study_bench import build_parser as bench_parser
from devtools.study_bench import checkpoint_figures, descendants, memory_kb, run_trials, tiled, trial_times
from devtools.study_bench import main as bench_main
from mtan.config import make_config
from mtan.data import Split, load_data
from mtan.errors import UserError
from study.record import JOURNAL
from study.search.journal import journal_storage
from tests.conftest import TINY_SET

REPO = Path(__file__).resolve().parents[1]


def test_a_trials_time_splits_into_work_and_overhead(finished_study):
    table = pd.read_csv(finished_study / "results.csv").set_index("trial")
    ray_dirs = sorted(finished_study.glob("ray/run_001/trial_*"))
    assert [d.name for d in ray_dirs] == [f"trial_{n:03d}" for n in table.index]
    for ray_dir in ray_dirs:
        times = trial_times(ray_dir)
        metrics = finished_study / "trials" / ray_dir.name / "metrics.jsonl"
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        # the work is what mtan.train measured itself, epoch by epoch (its own metrics file)
        assert times["work_s"] == pytest.approx(sum(row["seconds"] for row in rows))
        assert times["epochs"] == len(rows) == table.loc[int(ray_dir.name[-3:]), "epochs"]
        assert times["work_s"] + times["overhead_s"] == pytest.approx(times["trial_s"])
        assert 0 < times["overhead_s"] < times["trial_s"]


def test_a_checkpoints_size_is_the_model_and_adams_two_moments():
    figures = checkpoint_figures("cpu", checkpoint_every=10)
    weights = figures["parameters"] * 4  # fp32
    # plus the batch-norm statistics, the scheduler and the RNG states: a few per cent
    assert 3 * weights < figures["checkpoint_bytes"] < 3 * weights * 1.05
    assert figures["storage_bytes_per_epoch"] == pytest.approx(figures["checkpoint_bytes"] / 10 + 700)


def test_a_started_process_is_a_descendant_with_memory():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in descendants(os.getpid())
        memory = memory_kb(child.pid)
        assert 0 < memory["private"] and 0 < memory["pss"]
    finally:
        child.kill()
        child.wait()
    assert child.pid not in descendants(os.getpid())
    assert memory_kb(child.pid) == {}


def test_tiled_repeats_the_samples_in_order():
    split = Split(np.arange(3)[:, None], np.arange(3)[:, None] + 10, np.arange(3)[:, None] + 20.0)
    bigger = tiled(split, 7)
    assert bigger.images[:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert bigger.depth[:, 0].tolist() == [20, 21, 22, 20, 21, 22, 20]


def test_shared_memory_counts_once_across_the_processes_that_map_it():
    # two processes write every page of one 16 MiB file in /dev/shm, as the trials of a node read its
    # object store: each is charged half (PSS), together the file once
    size_kb = 16 * 1024
    segment = Path("/dev/shm") / f"mtan-bench-test-{os.getpid()}"
    script = (
        "import mmap, sys, time\n"
        "with open(sys.argv[1], 'r+b') as file:\n"
        "    mapped = mmap.mmap(file.fileno(), 0)\n"
        "mapped[:] = bytes(len(mapped))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    children = []
    try:
        with segment.open("wb") as file:
            file.truncate(size_kb * 1024)
        for _ in range(2):
            child = subprocess.Popen(
                [sys.executable, "-c", script, str(segment)], stdout=subprocess.PIPE, text=True
            )
            children.append(child)
            assert child.stdout.readline().strip() == "ready"
        shared = [memory_kb(child.pid)["shmem"] for child in children]
        assert sum(shared) == pytest.approx(size_kb, rel=0.02)
        assert shared[0] == pytest.approx(shared[1], rel=0.02)
    finally:
        for child in children:
            child.kill()
            child.wait()
        segment.unlink(missing_ok=True)


PEAK_AFTER_RESET = """
from devtools.driver_bench import peak_rss_bytes, reset_peak_rss
reset_peak_rss()
before = peak_rss_bytes()
block = bytearray(64 * 2**20)
block[::4096] = b"\\1" * len(block[::4096])  # every page touched
print(before, peak_rss_bytes())
"""


def test_peak_rss_sees_an_allocation_after_its_reset():
    # in a fresh process: a test worker's heap, grown and freed by earlier tests, can hold the block's pages
    done = subprocess.run([sys.executable, "-c", PEAK_AFTER_RESET], capture_output=True, text=True, cwd=REPO)
    before, after = map(int, done.stdout.split())
    assert after >= before + 60 * 2**20, done.stderr


def test_driver_bench_runs_a_small_study_through_the_studys_searcher(ray_cluster, tmp_path):
    lines: list[str] = []
    figures = driver_figures([5], tmp_path, concurrent=2, on_run=lines.append)
    (run,) = figures["runs"]
    assert run["trials"] == run["ended"] == 5 and run["errors"] == 0
    assert 5 <= run["epochs"] <= 5 * EPOCHS  # ASHA (grace 1) may stop trials after their first epoch
    assert run["wall_s_per_trial"] == pytest.approx(run["wall_s"] / 5)
    assert run["peak_rss_bytes"] > 0 and run["per_trial_vs_smallest"] == 1.0
    # the study's Optuna journal holds the 5 trials, the published points first
    study = optuna.load_study(study_name="driver-5", storage=journal_storage(tmp_path / "driver-5" / JOURNAL))
    assert len(study.trials) == 5
    assert study.trials[0].params["weighting"] == "equal" and study.trials[1].params["weighting"] == "dwa"
    assert lines == [format_run(run)] and lines[0].startswith("    5 trials")


def test_every_bench_that_measures_takes_json(tmp_path):
    # `driver` once crashed after its last study on the missing --json
    path = tmp_path / "figures.json"
    for mode in ("overhead", "memory", "checkpoint", "driver"):
        assert bench_parser().parse_args([mode, "--json", str(path)]).json == path


def test_driver_bench_refuses_an_empty_study():
    with pytest.raises(UserError, match="--trials and --concurrent must be at least 1"):
        bench_main(["driver", "--trials", "0"])


def test_the_memory_benchs_trials_run_without_tunes_boxes(ray_cluster, tiny_root, tmp_path, capfd):
    overrides = {k: json.loads(v) for k, v in (item.split("=") for item in TINY_SET)}
    base = make_config("cpu", data_root=str(tiny_root), epochs=1, **overrides)
    run_trials(base, load_data(base), 1, 120.0, tmp_path)
    assert (tmp_path / "memory-1" / "trials" / "trial_000" / "metrics.jsonl").is_file()  # it trained
    output = "".join(capfd.readouterr())
    for tune_says in ("Configuration for experiment", "View detailed results", "Trial status", "╭"):
        assert tune_says not in output
