"""The study benchmark's accounting: trial times from Ray's records, processes and their memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtan.data import Split
from study.bench import checkpoint_figures, descendants, memory_kb, tiled, trial_times


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
