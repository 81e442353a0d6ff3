"""Read a study's results directory (docs/results.md) into DataFrames, with the readers of
`study.record` (the module that writes it).

Anything that makes the directory unreadable as a study is a `UserError` with one line naming the
file, each file checked whole (results.csv against study.json and the journal, each trial's history
against its row: `study.record`); parts a study may lack (failed trials' metrics, best_config.json when
every trial failed, the reproduce/ folder, the Optuna journal) load as empty or None and the report says
so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.space import RecordedSpace
from mtan.errors import UserError
from study.record import FAILED, StudyFolder, journal_states, load_optuna_study


@dataclass(frozen=True)
class StudyResults:
    """Everything a results directory holds, as plain Python and pandas objects."""

    path: Path
    name: str
    study: dict[str, Any]
    space: RecordedSpace
    trials: pd.DataFrame
    curves: pd.DataFrame
    best: dict[str, Any] | None
    trivial: dict[str, Any] | None  # the trivial predictors' metrics (baselines.json)
    reproduce: pd.DataFrame | None
    journal: Path | None


def read_trials(
    folder: StudyFolder, space: RecordedSpace, journal: dict[int, str] | None = None
) -> pd.DataFrame:
    """results.csv as a DataFrame, one row per trial (checked against study.json and the `journal`'s
    trial states): metrics and numeric config columns as floats, every config column of `space` present."""
    frame = folder.read_results(journal)
    numeric = {"epochs", *space.numeric}
    for column in frame.columns:
        if column.startswith(("last_", "best_")) or column in numeric:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["state"] = frame["state"].fillna(FAILED).astype(str)
    for column in space.names:
        if column not in frame.columns:
            frame[column] = float("nan")
    return frame


def read_curves(folder: StudyFolder, trials: pd.DataFrame) -> pd.DataFrame:
    """All trials' per-epoch metrics in one long DataFrame with a `trial` column (the trial's number); a
    trial without metrics (a failed trial) has no rows."""
    frames = []
    for number, epochs in zip(trials["trial"].astype(int), trials["epochs"], strict=True):
        rows = folder.read_trial_metrics(number, None if pd.isna(epochs) else int(epochs))
        if rows:
            frame = pd.DataFrame.from_records(rows)
            frame.insert(0, "trial", number)
            frames.append(frame)
    if not frames:
        return pd.DataFrame({"trial": pd.Series(dtype=int), "epoch": pd.Series(dtype=float)})
    curves = pd.concat(frames, ignore_index=True)
    for column in curves.columns:
        if column != "trial":
            curves[column] = pd.to_numeric(curves[column], errors="coerce")
    return curves.sort_values(["trial", "epoch"], kind="stable").reset_index(drop=True)


def best_config_name(folder: StudyFolder) -> str | None:
    """The name of the study's best configuration (best_config.json's trial) among the retrained ones in
    reproduce/configs.csv, whichever mode retrained it (`top 1`, `best 1 of <method>`); None when there is
    no such table or it does not hold that trial."""
    configs = folder.read_reproduce_configs()
    best = folder.read_best_config()
    if configs is None or best is None or best.get("trial") is None:
        return None
    rows = configs.loc[pd.to_numeric(configs["trial"], errors="coerce") == int(best["trial"]), "config"]
    return str(rows.iloc[0]) if len(rows) else None


def read_reproduce(folder: StudyFolder) -> pd.DataFrame | None:
    """The best configuration's confirmation, `reproduce/summary.csv` indexed by metric (columns mean,
    std, n), or None when there is none."""
    frame = folder.read_reproduce_summary()
    if frame is None:
        return None
    if "config" in frame.columns:
        best = best_config_name(folder)
        frame = frame[frame["config"].astype(str) == best] if best is not None else frame.iloc[0:0]
    table = frame.set_index("metric")
    for column in ("mean", "std", "n"):
        table[column] = pd.to_numeric(table[column], errors="coerce") if column in table else float("nan")
    return table[["mean", "std", "n"]].astype(float)


def load_results(path: str | Path) -> StudyResults:
    """Load a study's results directory; a `UserError` if it is missing or is not a study."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such results directory")
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    folder = StudyFolder(root)
    for required in (folder.study_json, folder.results_csv):
        if not required.is_file():
            raise UserError(f"{root}: not a study results directory (no {required.name})")
    study = folder.read_study() or {}
    space = RecordedSpace.from_json(study.get("space"), folder.study_json)
    journal = folder.journal if folder.journal.is_file() else None
    states = journal_states(load_optuna_study(journal, root.resolve().name)) if journal else None
    trials = read_trials(folder, space, states)
    return StudyResults(
        path=root,
        name=root.resolve().name,
        study=study,
        space=space,
        trials=trials,
        curves=read_curves(folder, trials),
        best=folder.read_best_config(),
        trivial=folder.read_baselines(),
        reproduce=read_reproduce(folder),
        journal=journal,
    )
