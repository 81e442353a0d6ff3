"""One writer per study: an exclusive lock on ``STUDY/study.lock``, held for the life of the driver.

The lock is ``fcntl.flock`` on an open file, so the kernel releases it when the process ends in any way
(SIGKILL included): no stale lock is ever left to clean up. It holds across processes of one machine on
a local disk, and across machines on NFSv4, where the server's lock manager implements it. It is not a
lock on object storage (``s3://``): there the driver locks its local staging folder, which excludes a
second driver on the same head, not one started on another machine (docs/study.md, "One writer").

`check_not_in_use` probes the lock before the driver starts Ray, so that a second driver is refused at
once; the driver's `StudyLock`, held for its life, is what keeps a second writer out.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from mtan.errors import UserError

LOCK_FILE = "study.lock"


class StudyLock:
    """The study folder's lock; `acquire` refuses with a `UserError` while another process holds it."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting and record who holds it (pid, host, since when)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise _in_use(self.path.parent, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the file stays; an unlocked file means no driver)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def check_not_in_use(folder: Path) -> None:
    """Refuse, with `StudyLock.acquire`'s error, when a driver holds the lock of the study in `folder`:
    a read-only probe that takes the lock without waiting and lets it go at once, and writes nothing (no
    lock file: no driver has run there). A shared lock, so that it needs no write access (NFS) and
    still meets a driver's exclusive one."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(Path(folder), _read_holder(fd)) from None
    finally:
        os.close(fd)  # the last descriptor: the probe's lock goes with it


def _in_use(folder: Path, holder: str) -> UserError:
    return UserError(
        f"{folder}: the study is in use by another driver ({holder}); nothing was changed; wait for it to "
        "end or stop it first"
    )


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    return text or "a process that is starting"
