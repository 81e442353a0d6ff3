"""How every file of the project is written and read: written atomically (a temporary file beside the
target, then a rename), JSON with NaN and infinity as null; a file that cannot be read or parsed is a
`UserError` whose one line starts with its path. What a run folder holds: `mtan.run_folder`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from mtan.errors import UserError


def _read_umask() -> int:
    """The process's umask. Reading it means setting it, so this runs once, at import, before any thread
    of this process writes files (a later os.umask(0) would race with threads creating files)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files are created with this mode, as `open` creates them (0644 under the usual umask 022); `mkstemp`
# alone would leave them 0600, unreadable by a colleague on shared storage.
FILE_MODE = 0o666 & ~_read_umask()


def _cannot_write(path: Path, error: OSError) -> UserError:
    return UserError(f"cannot write {path}: {error.strerror or error}")


def check_writable_folder(path: Path) -> None:
    """Check that files can be created in the folder `path`, or, where it does not exist yet, in its
    nearest existing ancestor, which the first write creates it under (a read-only disk fails here, before
    anything is written); `UserError` names it otherwise. Creates nothing: a probe file, removed at once,
    so that a command refused by a later check leaves no folder behind."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UserError(f"cannot write into {path}: {error.strerror or error}") from None


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it onto `path` (creating its
    folder if need be); the file gets `FILE_MODE`, as the umask says. A write that fails (disk full,
    read-only disk, a file where a folder should be) raises `UserError` naming the file and leaves what
    was there before unchanged."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write_bytes(path, lambda file: file.write(text.encode()))


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as None (JSON null), numpy scalars as Python numbers, tuples as
    lists: what every JSON file of the project holds (strict JSON, readable by any parser)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy and torch scalars
        return json_safe(value.item())
    return value


def json_line(value: Mapping[str, Any]) -> str:
    """One line of a JSON-lines file (NaN as null)."""
    return json.dumps(json_safe(value), allow_nan=False) + "\n"


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON to `path` atomically (NaN as null)."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents; `UserError` naming it when it cannot be read or is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: cannot read (not UTF-8 text)") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror or error})") from None


def parse_json(text: str, source: Path | str) -> Any:
    """The value of a JSON text; `UserError` naming `source`, where it was read from, when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{source}: not valid JSON ({error.msg}, line {error.lineno})") from None


def read_json(path: Path) -> Any:
    """A JSON file's value; `UserError` naming it when it cannot be read or parsed."""
    return parse_json(read_text(path), path)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object; `UserError` naming it otherwise."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
