"""The study lock: one holder at a time, released by the kernel when its process dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mtan.errors import UserError
from study.lock import LOCK_FILE, StudyLock, check_not_in_use

REPO = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time; from study.lock import StudyLock; "
    "StudyLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)"
)


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path):
    with StudyLock(tmp_path):
        with pytest.raises(UserError, match=rf"in use by another driver \(pid {os.getpid()} on "):
            StudyLock(tmp_path).acquire()
    with StudyLock(tmp_path):  # released on leaving the block
        pass


def test_the_lock_goes_with_a_killed_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(UserError, match=f"pid {holder.pid} "):
            StudyLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        holder.kill()
    with StudyLock(tmp_path):  # no stale lock
        assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")


def test_the_probe_refuses_a_held_lock_as_acquire_does_and_holds_nothing(tmp_path):
    check_not_in_use(tmp_path)  # no driver ever ran here: nothing to meet, and nothing written
    assert not (tmp_path / LOCK_FILE).exists()
    with StudyLock(tmp_path):
        with pytest.raises(UserError) as acquired:
            StudyLock(tmp_path).acquire()
        with pytest.raises(UserError) as probed:
            check_not_in_use(tmp_path)
        assert str(probed.value) == str(acquired.value)
    check_not_in_use(tmp_path)  # released: free again
    with StudyLock(tmp_path):  # the probe let its lock go
        pass
