"""Read a study's results directory (docs/results.md) into DataFrames.

Anything that makes the directory unreadable as a study is a `UserError` with one line naming the
file; parts a study may lack (failed trials' metrics, best_config.json when every trial failed, the
reproduce/ folder, the Optuna journal) load as empty or None and the report says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.columns import HYPERPARAMETERS, NUMERIC_HYPERPARAMETERS
from mtan.errors import UserError

REQUIRED_RESULT_COLUMNS: tuple[str, ...] = ("trial_id", "state", "epochs", "weighting")


@dataclass(frozen=True)
class StudyResults:
    """Everything a results directory holds, as plain Python and pandas objects."""

    path: Path
    name: str
    study: dict[str, Any]
    trials: pd.DataFrame
    curves: pd.DataFrame
    best: dict[str, Any] | None
    baselines: dict[str, Any] | None
    reproduce: pd.DataFrame | None
    journal: Path | None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None


def _read_json_object(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_trials(path: Path) -> pd.DataFrame:
    """`results.csv` as a DataFrame, one row per trial, `trial_id` as text and metrics as floats."""
    try:
        frame = pd.read_csv(path, dtype={"trial_id": str, "state": str, "error": str, "weighting": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in frame.columns:
        if column.startswith(("last_", "best_")) or column in NUMERIC_HYPERPARAMETERS or column == "epochs":
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["state"] = frame["state"].fillna("failed").astype(str)
    if "error" not in frame.columns:
        frame["error"] = pd.Series([None] * len(frame), dtype=object)
    for column in HYPERPARAMETERS:
        if column not in frame.columns:
            frame[column] = float("nan")
    return frame


def read_metrics_jsonl(path: Path) -> pd.DataFrame:
    """One trial's `metrics.jsonl` as a DataFrame, one row per epoch."""
    records = []
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or "epoch" not in record:
            raise UserError(f"{path}: line {number} is not an object with an 'epoch'")
        records.append(record)
    return pd.DataFrame.from_records(records)


def read_curves(trials_dir: Path, trial_ids: list[str]) -> pd.DataFrame:
    """All trials' per-epoch metrics in one long DataFrame with a `trial_id` column; a trial without a
    metrics file (a failed trial) has no rows."""
    frames = []
    for trial_id in trial_ids:
        path = trials_dir / trial_id / "metrics.jsonl"
        if path.is_file():
            frame = read_metrics_jsonl(path)
            if len(frame):
                frame.insert(0, "trial_id", trial_id)
                frames.append(frame)
    if not frames:
        return pd.DataFrame({"trial_id": pd.Series(dtype=str), "epoch": pd.Series(dtype=float)})
    curves = pd.concat(frames, ignore_index=True)
    for column in curves.columns:
        if column != "trial_id":
            curves[column] = pd.to_numeric(curves[column], errors="coerce")
    return curves.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)


def summarize_seeds(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof 1) and count per numeric metric column of a per-seed table."""
    numeric = seeds.drop(columns=[c for c in ("seed", "trial_id") if c in seeds.columns])
    numeric = numeric.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    return pd.DataFrame(
        {"mean": numeric.mean(), "std": numeric.std(ddof=1), "n": numeric.count().astype(int)}
    ).rename_axis("metric")


def _summary_from_csv(path: Path) -> pd.DataFrame:
    """`reproduce/summary.csv` in either long form (`metric,mean,std`) or one wide row
    (`<m>_mean`, `<m>_std`), as a DataFrame indexed by metric with `mean`, `std`, `n`."""
    frame = pd.read_csv(path)
    if {"metric", "mean"} <= set(frame.columns):
        out = frame.set_index("metric")
        out["std"] = pd.to_numeric(out["std"], errors="coerce") if "std" in out else float("nan")
        out["n"] = pd.to_numeric(out["n"], errors="coerce") if "n" in out else float("nan")
        return out[["mean", "std", "n"]].astype(float)
    if len(frame) == 1:
        row = frame.iloc[0]
        names = sorted({c[: -len("_mean")] for c in frame.columns if c.endswith("_mean")})
        if names:
            return pd.DataFrame(
                {
                    "mean": [float(row[f"{m}_mean"]) for m in names],
                    "std": [float(row.get(f"{m}_std", math.nan)) for m in names],
                    "n": [float(row.get("n", math.nan)) for _ in names],
                },
                index=pd.Index(names, name="metric"),
            )
    raise UserError(f"{path}: expected columns metric,mean,std or one row of <metric>_mean/<metric>_std")


def best_config_seeds(folder: Path, seeds: pd.DataFrame) -> pd.DataFrame:
    """The rows of the study's best configuration ("top 1" in configs.csv) when `study.reproduce --top`
    retrained several; all rows otherwise."""
    configs = folder / "configs.csv"
    if "config" not in seeds.columns or not configs.is_file():
        return seeds
    roles = pd.read_csv(configs)
    best = roles.loc[roles["roles"].astype(str).str.split("; ").map(lambda r: "top 1" in r), "config"]
    return seeds[seeds["config"].isin(best)] if len(best) else seeds


def read_reproduce(folder: Path) -> pd.DataFrame | None:
    """The reproduce runs summarised per metric (index: metric; columns: mean, std, n), or None when
    the folder is absent. Computed from `seeds.csv` when present, else read from `summary.csv`."""
    seeds, summary = folder / "seeds.csv", folder / "summary.csv"
    try:
        if seeds.is_file():
            table = summarize_seeds(best_config_seeds(folder, pd.read_csv(seeds)))
        elif summary.is_file():
            table = _summary_from_csv(summary)
        else:
            return None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(f"{folder}: unreadable reproduce table ({str(error).splitlines()[0]})") from None
    # seeds.csv may name the final metrics `last_<m>`; the report looks them up by `<m>`.
    table.index = [str(m).removeprefix("last_") for m in table.index]
    return table.rename_axis("metric")


def load_results(path: str | Path) -> StudyResults:
    """Load a study's results directory; a `UserError` if it is missing or is not a study."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such results directory")
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    study_file, results_file = root / "study.json", root / "results.csv"
    for required in (study_file, results_file):
        if not required.is_file():
            raise UserError(f"{root}: not a study results directory (no {required.name})")
    study = _read_json_object(study_file)
    trials = read_trials(results_file)
    curves = read_curves(root / "trials", trials["trial_id"].astype(str).tolist())
    best_file, baselines_file = root / "best_config.json", root / "baselines.json"
    best = _read_json(best_file) if best_file.is_file() else None
    if best is not None and not isinstance(best, dict):
        best = None
    baselines = _read_json_object(baselines_file) if baselines_file.is_file() else None
    journal = root / "optuna.journal"
    return StudyResults(
        path=root,
        name=root.resolve().name,
        study=study,
        trials=trials,
        curves=curves,
        best=best,
        baselines=baselines,
        reproduce=read_reproduce(root / "reproduce") if (root / "reproduce").is_dir() else None,
        journal=journal if journal.is_file() else None,
    )


def load_optuna_study(journal: Path, name: str) -> Any:
    """The Optuna study in a `JournalStorage` file: the one named `name`, or the only one there.
    A `UserError` when the journal cannot be read or names several other studies."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        storage = JournalStorage(JournalFileBackend(str(journal)))
        names = [s.study_name for s in storage.get_all_studies()]
    except Exception as error:  # noqa: BLE001 - any storage failure is one line for the user
        raise UserError(
            f"{journal}: not a readable Optuna journal ({type(error).__name__}: {error})"
        ) from None
    if name not in names:
        if len(names) != 1:
            raise UserError(f"{journal}: no study named {name!r} (found: {', '.join(names) or 'none'})")
        name = names[0]
    return optuna.load_study(study_name=name, storage=storage)
