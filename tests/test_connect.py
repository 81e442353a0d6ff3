"""Which Ray a study command uses, and the Ray it starts itself: on loopback, with this machine's
capacity, quiet; the private parts of Ray it touches checked against the pinned Ray."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from mtan.errors import UserError
from study import compat
from study.cluster import check_trial_fits, ray_address
from tests.listening import is_loopback

REPO = Path(__file__).resolve().parents[1]


def test_the_flag_then_the_environment_then_a_new_local_instance(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address("auto") == "auto"
    assert ray_address(None) == "local"  # not whatever cluster happens to run on this machine
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    assert ray_address(None) is None  # ray.init reads $RAY_ADDRESS itself
    assert ray_address("10.0.0.1:6379") == "10.0.0.1:6379"


def test_the_study_s_own_ray_listens_on_loopback_only_with_token_authentication():
    # its own process: one Ray instance per test process (tests/conftest.py); this one is the study's own
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_MODE", None)
    command = [sys.executable, "-m", "tests.listening"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    processes = {Path(s["process"]).name for s in report["sockets"]}
    assert {"gcs_server", "raylet", "ray::IDLE"} <= processes, report  # the GCS, the raylet, a worker
    outside = [s for s in report["sockets"] if not is_loopback(ipaddress.ip_address(s["address"]))]
    assert not outside, outside
    assert report["node"] == "127.0.0.1"
    assert report["auth_mode"] == "token"  # Ray 2.60's default for a local instance, kept
    assert "Token authentication" not in done.stderr  # ... without its notice


def test_loopback_addresses_as_proc_net_tcp_shows_them():
    assert is_loopback(ipaddress.ip_address("127.0.0.1")) and is_loopback(ipaddress.ip_address("::1"))
    assert is_loopback(ipaddress.ip_address("::ffff:127.0.0.1"))  # a dual-stack socket bound to 127.0.0.1
    assert not is_loopback(ipaddress.ip_address("::")) and not is_loopback(ipaddress.ip_address("0.0.0.0"))
    assert not is_loopback(ipaddress.ip_address("::ffff:192.0.2.2"))


def test_a_trial_larger_than_this_machine_is_refused_before_ray_starts():
    machine = {"CPU": 2.0, "GPU": 0.0}
    check_trial_fits(2, 0, local=machine)
    with pytest.raises(UserError) as too_many:
        check_trial_fits(100, 0, local=machine)
    assert str(too_many.value) == (
        "--cpus-per-trial 100: this machine has 2 CPUs for the Ray instance the command starts (join a "
        "larger cluster with --address)"
    )
    with pytest.raises(UserError, match=r"^--gpus-per-task 0.5: this machine has 0 GPUs"):
        check_trial_fits(1, 0.5, ("--cpus-per-task", "--gpus-per-task"), local=machine)


def test_the_touchpoints_are_read_in_the_ray_the_project_pins():
    pin = re.search(r'"ray\[tune\]==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pin is not None and pin.group(1) == compat.WRITTEN_FOR["ray"] == ray.__version__
    cpus = compat.local_cpus()
    assert cpus >= 1 and cpus == int(cpus)
