"""Where a study's files live: ``STORAGE/NAME`` on a local folder, or on a remote storage path
(``s3://...``), where the driver's own files are staged locally and uploaded, and the trials write their
folders ``trials/trial_NNN/`` from the node they run on.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs

from mtan.errors import UserError
from mtan.files import atomic_write_text, check_writable_folder
from mtan.run_folder import CHECKPOINT_FILE
from study.lock import LOCK_FILE
from study.record import ERROR_FILE, RAY_DIR, STUDY_JSON, TRIALS_DIR, StudyFolder, trial_dirname

STAGING_ROOT = Path("~/.cache/mtan-study").expanduser()


def is_remote(storage_path: str) -> bool:
    """Whether `storage_path` is a URI such as ``s3://bucket/path`` rather than a local folder."""
    return "://" in storage_path


def check_storage_path(storage_path: str) -> None:
    """A local storage path must be a folder this process can write, or one it can create (the driver
    creates it once every check has passed); `UserError` naming ``--storage-path`` otherwise, before Ray
    starts. A remote one is checked by its first write."""
    if is_remote(storage_path):
        return
    try:
        check_writable_folder(Path(storage_path).expanduser())
    except UserError as error:
        raise UserError(f"--storage-path: {error}") from None


@dataclass(frozen=True)
class StudyLocation:
    """The study's folder: its URI, and the local folder this process writes the driver's files to."""

    storage_path: str  # absolute folder or URI
    name: str
    local_dir: Path  # = the study folder for local storage, a staging folder otherwise

    @classmethod
    def of(cls, storage_path: str, name: str) -> StudyLocation:
        """The location of study `name` under `storage_path`."""
        if is_remote(storage_path):
            uri = f"{storage_path.rstrip('/')}/{name}"
            digest = hashlib.sha256(uri.encode()).hexdigest()[:12]  # one staging folder per study URI
            return cls(storage_path.rstrip("/"), name, STAGING_ROOT / f"{name}-{digest}")
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
        """The study folder: ``STORAGE/NAME``."""
        return f"{self.storage_path}/{self.name}"

    @property
    def journal(self) -> Path:
        """The Optuna journal file (local; uploaded with the other files for remote storage)."""
        return self.folder.journal

    @property
    def trials_uri(self) -> str:
        """``STORAGE/NAME/trials``, where each trial writes its folder."""
        return f"{self.experiment_uri}/{TRIALS_DIR}"

    @property
    def ray_uri(self) -> str:
        """``STORAGE/NAME/ray``, Ray's storage path (its experiment folders, never read back)."""
        return f"{self.experiment_uri}/{RAY_DIR}"

    def check_new(self) -> None:
        """Refuse to start a new study where a study or other files are (before anything is written)."""
        folder = self.local_dir
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder}: exists and is not a folder; choose another --name")
        if (folder / STUDY_JSON).exists() or (
            is_remote(self.storage_path) and _remote_exists(f"{self.experiment_uri}/{STUDY_JSON}")
        ):
            raise UserError(
                f"{self.experiment_uri}: a study exists there; pass --resume or choose another --name"
            )
        others = sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE) if folder.is_dir() else []
        if others:
            raise UserError(
                f"{folder}: exists and is not a study of this tool (it holds {others[0]!r} and no "
                f"{STUDY_JSON}); choose another --name"
            )

    @property
    def folder(self) -> StudyFolder:
        """The study's files in the local folder (uploaded for remote storage)."""
        return StudyFolder(self.local_dir)

    def publish(self) -> None:
        """Upload the staged files to remote storage (nothing to do for a local folder)."""
        if is_remote(self.storage_path):
            filesystem, path = pyarrow.fs.FileSystem.from_uri(self.experiment_uri)
            filesystem.create_dir(path, recursive=True)
            for file in sorted(self.local_dir.iterdir()):
                if file.is_file() and file.name != LOCK_FILE and not file.name.startswith("."):
                    pyarrow.fs.copy_files(str(file), f"{path}/{file.name}", destination_filesystem=filesystem)


def _remote_exists(uri: str) -> bool:
    filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


class TrialStore:
    """The trial folders ``STUDY/trials/trial_NNN/`` on the storage path, local or remote (pyarrow)."""

    def __init__(self, trials_uri: str) -> None:
        self.uri = trials_uri
        self.filesystem, self.root = pyarrow.fs.FileSystem.from_uri(trials_uri)

    @property
    def is_local(self) -> bool:
        """Whether the folders are a local path (a trial then writes into its own folder), not a URI
        (``s3://``, or ``file://``, which takes the remote way: tests use it)."""
        return not is_remote(self.uri)

    def folder(self, number: int) -> str:
        """The path of trial `number`'s folder on the store's file system."""
        return f"{self.root}/{trial_dirname(number)}"

    def files(self, number: int) -> list[str]:
        """The names of the files in trial `number`'s folder (none when it has no folder)."""
        selector = pyarrow.fs.FileSelector(self.folder(number), allow_not_found=True)
        infos = self.filesystem.get_file_info(selector)
        return sorted(info.base_name for info in infos if info.type == pyarrow.fs.FileType.File)

    def read_text(self, number: int, name: str) -> str | None:
        """A UTF-8 file of trial `number`'s folder, or None when there is none; `UserError` naming it when
        it is not UTF-8 text."""
        path = f"{self.folder(number)}/{name}"
        if self.filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
            return None
        with self.filesystem.open_input_stream(path) as stream:
            data = stream.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                f"{self.uri}/{trial_dirname(number)}/{name}: cannot read (not UTF-8 text)"
            ) from None

    def write_text(self, number: int, name: str, text: str) -> None:
        """Write a file of trial `number`'s folder whole (atomically on a local path; an object store
        replaces an object whole)."""
        if self.is_local:
            atomic_write_text(Path(self.folder(number)) / name, text)
            return
        self.filesystem.create_dir(self.folder(number), recursive=True)
        with self.filesystem.open_output_stream(f"{self.folder(number)}/{name}") as stream:
            stream.write(text.encode("utf-8"))

    def end(self, number: int, failed: bool) -> None:
        """Remove what trial `number` no longer needs once it has ended: its checkpoint (model and
        optimizer state) and any temporary file a killed write left; the error line unless it failed."""
        for name in self.files(number):
            if name == CHECKPOINT_FILE or name.startswith(".") or (name == ERROR_FILE and not failed):
                self.filesystem.delete_file(f"{self.folder(number)}/{name}")

    @contextmanager
    def working_folder(self, number: int) -> Iterator[tuple[Path, Callable[[], None]]]:
        """A local folder holding trial `number`'s files, and a function that makes the store agree with
        it: the trial folder itself on a local storage path (nothing to do), otherwise a scratch copy
        whose new or changed files are uploaded."""
        if self.is_local:
            folder = Path(self.folder(number))
            folder.mkdir(parents=True, exist_ok=True)
            yield folder, lambda: None
            return
        self.filesystem.create_dir(self.folder(number), recursive=True)
        with tempfile.TemporaryDirectory(prefix="mtan-trial-") as scratch:
            local = Path(scratch)
            for name in self.files(number):
                if not name.startswith("."):
                    with self.filesystem.open_input_stream(f"{self.folder(number)}/{name}") as source:
                        with open(local / name, "wb") as target:
                            shutil.copyfileobj(source, target)
            uploaded = {p.name: _signature(p) for p in local.iterdir()}

            def upload_changed() -> None:
                for path in sorted(local.iterdir()):
                    if path.name.startswith(".") or not path.is_file():
                        continue
                    if uploaded.get(path.name) != _signature(path):
                        destination = f"{self.folder(number)}/{path.name}"
                        pyarrow.fs.copy_files(str(path), destination, destination_filesystem=self.filesystem)
                        uploaded[path.name] = _signature(path)

            yield local, upload_changed


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
