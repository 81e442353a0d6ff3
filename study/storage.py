"""Where a study's files live: ``STORAGE/NAME`` on a local folder, or staged locally and uploaded to a
remote storage path (``s3://...``) at the end; and reading a trial's history back from its checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune

from mtan.files import METRICS_FILE
from study.record import STUDY_JSON, StudyFolder

STAGING_ROOT = Path("~/.cache/mtan-study").expanduser()


def is_remote(storage_path: str) -> bool:
    """Whether `storage_path` is a URI such as ``s3://bucket/path`` rather than a local folder."""
    return "://" in storage_path


@dataclass(frozen=True)
class StudyLocation:
    """The study's folder: Ray's experiment URI, and the local folder this process writes to."""

    storage_path: str  # absolute folder or URI
    name: str
    local_dir: Path  # = the experiment folder for local storage, a staging folder otherwise

    @classmethod
    def of(cls, storage_path: str, name: str) -> StudyLocation:
        """The location of study `name` under `storage_path`."""
        if is_remote(storage_path):
            return cls(storage_path.rstrip("/"), name, STAGING_ROOT / name)
        root = Path(storage_path).expanduser().resolve()
        return cls(str(root), name, root / name)

    @staticmethod
    def latest_name(storage_path: str) -> str | None:
        """The most recently started study under a local `storage_path` (by its study.json)."""
        if is_remote(storage_path):
            return None
        root = Path(storage_path).expanduser()
        found = sorted(root.glob(f"*/{STUDY_JSON}"), key=lambda p: p.stat().st_mtime)
        return found[-1].parent.name if found else None

    @property
    def experiment_uri(self) -> str:
        """Ray's experiment path: ``STORAGE/NAME``."""
        return f"{self.storage_path}/{self.name}"

    @property
    def folder(self) -> StudyFolder:
        """The study's files in the local folder (uploaded at the end for remote storage)."""
        return StudyFolder(self.local_dir)

    def publish(self) -> None:
        """Upload the staged files to remote storage (nothing to do for a local folder)."""
        if is_remote(self.storage_path):
            pyarrow.fs.copy_files(str(self.local_dir), self.experiment_uri)


def read_history(checkpoint: tune.Checkpoint) -> list[dict[str, Any]]:
    """The `metrics.jsonl` rows of a trial's checkpoint (only that small file is read)."""
    path = f"{checkpoint.path.rstrip('/')}/{METRICS_FILE}"
    with checkpoint.filesystem.open_input_stream(path) as stream:
        text = stream.read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
