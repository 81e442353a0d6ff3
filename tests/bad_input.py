"""Helpers for the bad-input tests: run a command's `main` as its command line does, and fingerprint a
folder to show that a refused command changed nothing in it."""

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from mtan.errors import run_cli


def refused(main: Callable[[Sequence[str] | None], int], argv: Sequence[str], capsys) -> tuple[int, str]:
    """Run `main(argv)` through `run_cli`; return its exit code and its one line on stderr (the test
    fails if there is more than one line or a traceback)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_cli(main, argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return stopped.value.code, lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()
    }
