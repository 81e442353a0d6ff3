"""A run folder (``python -m mtan.train --out DIR``, a study's ``trials/trial_NNN/``, a retrained seed's
folder): the names of its files and one reader and one writer per file, so that training, the study and
the analysis read each file the same way (docs/results.md).

Every writer is atomic and writes NaN as null (`mtan.files`); every reader raises a `UserError` whose one
line starts with the file's path (and names the line of a ``metrics.jsonl``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from mtan.config import TrainConfig, config_from_flat
from mtan.errors import ConfigError, UserError
from mtan.files import (
    atomic_write_json,
    atomic_write_text,
    json_line,
    parse_json,
    read_json,
    read_json_object,
    read_text,
)
from mtan.metrics import METRIC_KEYS, TAIL_EPOCHS, tail_mean

CONFIG_FILE = "config.json"  # the run's `TrainConfig`, flat
METRICS_FILE = "metrics.jsonl"  # one row per finished epoch
SUMMARY_FILE = "summary.json"  # the last epoch's metrics and the mean of the last `TAIL_EPOCHS`
TRIVIAL_FILE = "baselines.json"  # the trivial predictors' metrics (the name is part of the record format)
CHECKPOINT_FILE = "checkpoint.pt"  # written and read by `mtan.checkpoint`

Row = dict[str, Any]  # an epoch's row: "epoch" an int, every other value a number or None (null)


# ---------------------------------------------------------------- config.json


def check_config(flat: Any, source: Path | str) -> dict[str, Any]:
    """`flat` when it is a flat config that `mtan.config` accepts (a JSON object of `TrainConfig` fields);
    otherwise `UserError` (`ConfigError` for a bad value) naming `source`, where it was read from."""
    if not isinstance(flat, dict):
        raise UserError(f"{source}: expected a JSON object of config fields, got {type(flat).__name__}")
    try:
        config_from_flat(flat)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return flat


def parse_config(text: str, source: Path | str) -> dict[str, Any]:
    """A config.json's text (e.g. from a remote trial folder) as a flat dict, checked as a `TrainConfig`."""
    return check_config(parse_json(text, source), source)


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's config.json as a flat dict, checked as a `TrainConfig`."""
    path = Path(folder) / CONFIG_FILE
    return check_config(read_json(path), path)


def write_config(folder: Path, config: TrainConfig) -> None:
    atomic_write_json(Path(folder) / CONFIG_FILE, config.to_flat())


# ---------------------------------------------------------------- metrics.jsonl


def parse_metrics(text: str, source: Path | str) -> list[Row]:
    """The rows of a metrics.jsonl's text, one per finished epoch (blank lines skipped); `UserError` naming
    `source` and the first line that is not a JSON object with an integer ``epoch`` (a truncated last line,
    an edit). For text read from a remote store; a local folder: `read_metrics`."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{source}: line {number} is not valid JSON ({error.msg}); truncated?") from None
        epoch = row.get("epoch") if isinstance(row, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise UserError(
                f"{source}: line {number} is not an epoch's row (an object with an integer epoch)"
            )
        rows.append(row)
    return rows


def read_metrics(folder: Path) -> list[Row]:
    """The rows of the folder's metrics.jsonl (`parse_metrics`); none when it has no such file."""
    path = Path(folder) / METRICS_FILE
    return parse_metrics(read_text(path), path) if path.exists() else []


def write_metrics(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite the folder's metrics.jsonl with `rows`, one JSON object per line."""
    atomic_write_text(Path(folder) / METRICS_FILE, "".join(json_line(row) for row in rows))


# ---------------------------------------------------------------- summary.json


def run_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json: the epochs trained, the last epoch's metrics and each metric's mean over the last
    `TAIL_EPOCHS` epochs (all when fewer), the paper's protocol."""
    last = rows[-1] if rows else {}
    return {
        "epochs": len(rows),
        "tail_epochs": min(TAIL_EPOCHS, len(rows)),
        "last": {key: last[key] for key in METRIC_KEYS if key in last},
        "tail_mean": tail_mean(rows),
    }


def read_summary(folder: Path) -> dict[str, Any]:
    return read_json_object(Path(folder) / SUMMARY_FILE)


def write_summary(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write the summary of `rows`, the run's rows so far (`run_summary`)."""
    atomic_write_json(Path(folder) / SUMMARY_FILE, run_summary(rows))


# ---------------------------------------------------------------- baselines.json


def read_trivial_metrics(folder: Path) -> dict[str, float | None]:
    """The trivial predictors' metrics (`mtan.evaluate.trivial_predictor_metrics`) in the folder's
    baselines.json; `UserError` naming the file for a value that is not a number or null."""
    path = Path(folder) / TRIVIAL_FILE
    metrics = read_json_object(path)
    for key, value in metrics.items():
        if value is not None and (not isinstance(value, Real) or isinstance(value, bool)):
            raise UserError(f"{path}: {key} is {value!r}, not a number")
    return metrics


def write_trivial_metrics(folder: Path, metrics: Mapping[str, float]) -> None:
    atomic_write_json(Path(folder) / TRIVIAL_FILE, metrics)
