"""The atomic writers create their files with the mode the umask gives, as `open` would."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WRITE_BOTH = (
    "import sys; from pathlib import Path; from mtan.checkpoint import save_checkpoint; "
    "from mtan.files import atomic_write_text; "
    "atomic_write_text(Path(sys.argv[1]) / 'a.json', '{}'); save_checkpoint(Path(sys.argv[1]) / 'c.pt', {})"
)


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("077", 0o600), ("002", 0o664)])
def test_files_get_the_mode_the_umask_says(tmp_path, umask, mode):
    # a fresh process: the module reads the umask once, when it is imported
    command = f'umask {umask} && exec {sys.executable} -c "{WRITE_BOTH}" {tmp_path}'
    subprocess.run(["sh", "-c", command], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    for name in ("a.json", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "c.pt"]  # no temporary file left
