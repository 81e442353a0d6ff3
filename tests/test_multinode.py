"""A study on a multi-node Ray cluster survives the loss of a worker node mid-trial.

The session's cluster (tests/conftest.py): a head without CPUs and two 1-CPU workers, so each of the two
trials runs on its own worker. Once both have checkpointed an epoch, one worker node is killed; its trial
must continue from its last checkpoint on the surviving worker, and the study must end with both trials
complete and no epoch lost or trained twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import ray

from tests.conftest import WORKER_CPUS, tiny_study_args
from tests.tiny_data import write_tiny_set

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 6


def trial_parents() -> set[int]:
    """The parent pids (raylets) of the processes running a Tune trial (Linux /proc)."""
    parents = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                parents.add(int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]))
        except OSError:  # the process ended meanwhile
            continue
    return parents


def busy_workers(cluster) -> list:
    """The worker nodes that run a trial right now."""
    parents = trial_parents()
    return [n for n in cluster.worker_nodes if n.all_processes["raylet"][0].process.pid in parents]


def checkpointed_trials(study_dir: Path) -> int:
    return sum(1 for trial in study_dir.glob("trials/trial_*") if (trial / "checkpoint.pt").exists())


def result_rows(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def test_a_trial_survives_the_loss_of_its_node(ray_cluster, tmp_path):
    # epochs of a second or so (64 images, the cpu preset's width), so that the kill lands mid-trial
    root = write_tiny_set(tmp_path / "data", train=64, val=4)
    args = tiny_study_args(root, tmp_path, "multi", "--num-samples", "2", "--max-epochs", str(EPOCHS))
    args += ["--grace-period", str(EPOCHS), "--address", ray_cluster.address, "--checkpoint-every", "1"]
    args += ["--set", "max_train_images=null", "--set", "width=0.25"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "study.run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    study_dir = tmp_path / "multi"
    victim = None
    try:
        deadline = time.monotonic() + 600  # a bounded wait: a loaded machine starts trials slowly
        while checkpointed_trials(study_dir) < 2 or len(busy_workers(ray_cluster)) < 2:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "the two trials never ran at the same time"
            time.sleep(0.2)
        victim = busy_workers(ray_cluster)[0]
        ray_cluster.remove_node(victim, allow_graceful=False)
        output = process.communicate(timeout=300)[0].decode()
    finally:
        process.kill()
        if victim is not None:  # give the session its capacity back
            ray_cluster.add_node(num_cpus=WORKER_CPUS)
            wait_for_cpus(2 * WORKER_CPUS)
    assert process.returncode == 0, output

    table = pd.read_csv(study_dir / "results.csv")
    assert len(table) == 2 and (table["state"] == "completed").all() and (table["epochs"] == EPOCHS).all()
    restarted = []
    for ray_dir in study_dir.glob("ray/run_001/trial_*"):
        rows = result_rows(ray_dir)
        pids = [row["pid"] for row in rows]
        epochs = [row["epoch"] for row in rows]
        if len(set(pids)) > 1:
            switch = next(i for i, pid in enumerate(pids) if pid != pids[0])
            # the new process went on after its newest checkpoint, at or after the last reported epoch
            # (one later when the checkpoint of the next epoch was written just before the node died)
            assert epochs[switch - 1] < epochs[switch] <= epochs[switch - 1] + 2, epochs
            assert epochs == sorted(epochs), epochs  # no epoch trained twice
            restarted.append(ray_dir.name)
        kept = (study_dir / "trials" / ray_dir.name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in kept] == list(range(1, EPOCHS + 1))  # nothing lost
    assert len(restarted) == 1, "exactly the trial of the killed node was restarted"
    number = int(restarted[0].removeprefix("trial_"))
    rows = table.set_index("trial")
    assert list(rows["restarts"]) == [int(n == number) for n in rows.index]  # counted in results.csv
    reason = rows.loc[number, "restart_reason"]
    assert reason.startswith(("ActorDiedError: ", "ActorUnavailableError: ")) and "\n" not in reason, reason
    assert f"trial {number}  restart 1: {reason}; again from its last checkpoint" in output
    assert ray.cluster_resources().get("CPU") == 2 * WORKER_CPUS


def wait_for_cpus(cpus: float, timeout: float = 120) -> None:
    """Wait until Ray's view of the cluster has `cpus` CPUs again (a new node is announced to the GCS
    some time after it started: a bounded wait on the condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while ray.cluster_resources().get("CPU") != cpus:
        assert time.monotonic() < deadline, f"the cluster has {ray.cluster_resources().get('CPU')} CPUs"
        time.sleep(0.5)
