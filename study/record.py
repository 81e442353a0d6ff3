"""A study's folder, ``STORAGE/NAME/`` (docs/results.md): every file name, the trial states, and one
read/write pair per file. No Ray (json, pandas; Optuna only to read the journal, imported when asked),
so the analysis reads a study with the same code that wrote it.

Every JSON file holds NaN and infinity as null (`mtan.files.json_safe`); a file that cannot be read is a
`UserError` with one line naming it (`mtan.files`). A trial folder is a run folder: its files are read and
written by `mtan.run_folder`. Every file is checked whole: a CSV cut mid-row, a results.csv whose trials
disagree with study.json or the journal, a trial history shorter than its row says, is refused with one
line naming it. A trial is keyed by its Optuna trial number n: results.csv's ``trial`` column, its
folder ``trials/trial_{n:03d}/`` and the seed offset.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mtan.errors import UserError
from mtan.files import atomic_write_json, atomic_write_text, json_line, read_json_object
from mtan.metrics import HIGHER_IS_BETTER, METRIC_KEYS, tail_mean
from mtan.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    TRIVIAL_FILE,
    read_metrics,
    read_trivial_metrics,
    write_metrics,
    write_trivial_metrics,
)
from study.front import HYPERVOLUME_COLUMNS, pareto_column

STUDY_JSON = "study.json"
RESULTS_CSV = "results.csv"
HYPERVOLUME_CSV = "hypervolume.csv"  # a study of several objectives: its front's hypervolume over time
BEST_CONFIG_JSON = "best_config.json"
BASELINES_JSON = TRIVIAL_FILE  # the trivial predictors' metrics, as in a run folder
JOURNAL = "optuna.journal"
TRIALS_DIR = "trials"
RAY_DIR = "ray"  # Ray's own experiment folders, one per driver run; nothing reads them back
ERROR_FILE = "error.txt"  # in a trial folder: why its last attempt failed, one line
RESTARTS_FILE = "restarts.jsonl"  # in a trial folder: a line per restart (worker lost, driver resumed)
REPRODUCE_DIR = "reproduce"
SEEDS_CSV = "seeds.csv"
SUMMARY_CSV = "summary.csv"
CONFIGS_CSV = "configs.csv"
PARETO_ROLE = "pareto front"  # configs.csv's role of a trial on the study's Pareto front (--pareto)
COMPARISONS_CSV = "comparisons.csv"

# study.json's status: a driver runs it (or was killed: then its lock is free), it was interrupted and
# can be resumed, or every trial has ended and the results are written.
RUNNING, INTERRUPTED, FINISHED = "running", "interrupted", "finished"
COMPLETED, STOPPED_EARLY, FAILED = "completed", "stopped_early", "failed"
STATES: tuple[str, ...] = (COMPLETED, STOPPED_EARLY, FAILED)
# results.csv: these columns, the search space's config columns (study.json's space), then
# last_<m>, best_<m> and tail_<m> for every metric.
ID_COLUMNS: tuple[str, ...] = ("trial", "trial_id", "state", "epochs", "error")
RESTART_COLUMNS: tuple[str, ...] = ("restarts", "restart_reason")  # absent from studies recorded before
# A study of several objectives: whether a trial is on the Pareto front of the completed trials, by the
# means of its objectives over its last 10 epochs (its tail_ columns); after the restart columns.
PARETO_COLUMN = "pareto"
# How the Optuna journal names the states of ended trials (`study.search.searcher`), as results.csv does.
JOURNAL_STATES: dict[str, str] = {"COMPLETE": COMPLETED, "PRUNED": STOPPED_EARLY, "FAIL": FAILED}


def trial_dirname(number: int) -> str:
    """The folder of trial `number` (Optuna's trial number, from 0) under ``trials/``."""
    return f"trial_{number:03d}"


SEED_DIR_PREFIX = "seed_"


def seed_dirname(seed: int) -> str:
    """The run folder of one seed of a retrained configuration under ``reproduce/<config>/``."""
    return f"{SEED_DIR_PREFIX}{seed}"


def metric_columns() -> list[str]:
    """results.csv's metric columns: the last epoch's value, the best of every epoch and the mean over the
    last 10 epochs (`mtan.metrics.tail_mean`, the paper's protocol) per metric."""
    return [*(f"{prefix}_{k}" for prefix in ("last", "best", "tail") for k in METRIC_KEYS)]


# ---------------------------------------------------------------- CSV


def read_csv(path: Path, dtype: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A CSV file as this module writes it, checked whole (a header, every row as many fields as the
    header, the last one ended by its newline); `UserError` naming it otherwise."""
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a readable CSV (not UTF-8 text)") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise UserError(f"{path}: not a readable CSV ({error})") from None
    if not rows:
        raise UserError(f"{path}: empty, not even a header")
    if not text.endswith("\n"):
        raise UserError(f"{path}: cut off in its last row (row {len(rows) - 1} has no end of line)")
    for number, row in enumerate(rows[1:], start=1):
        if len(row) != len(rows[0]):
            raise UserError(
                f"{path}: row {number} has {len(row)} fields, the header {len(rows[0])}; the file is broken"
            )
    try:
        return pd.read_csv(io.StringIO(text), dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise UserError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a table as CSV atomically (missing values as empty cells)."""
    atomic_write_text(path, table.to_csv(index=False))


# ---------------------------------------------------------------- trials and results.csv


@dataclass(frozen=True)
class EndedTrial:
    """One ended trial of a finished study: its number, its config columns and training configuration,
    its per-epoch rows, and why it failed, if it did."""

    number: int  # Optuna's trial number: the trial's one key
    trial_id: str  # Ray's id of its latest run, for information
    columns: Mapping[str, Any]  # results.csv's config columns (`SearchSpace.column_values`)
    config: Mapping[str, Any]  # the flat `TrainConfig` it trained with (its config.json; empty if none)
    history: tuple[Mapping[str, Any], ...] = ()  # `metrics.jsonl` rows, in epoch order
    error: str | None = None
    point: Mapping[str, Any] = field(default_factory=dict)  # the searched values
    restarts: int = 0  # times it was started again: its worker lost, a later driver run continuing it
    restart_reason: str = ""  # why the last time, one line


def trial_state(trial: EndedTrial, max_epochs: int) -> str:
    """``failed`` with an error, ``completed`` after `max_epochs` epochs, else ``stopped_early``."""
    if trial.error is not None:
        return FAILED
    return COMPLETED if len(trial.history) >= max_epochs else STOPPED_EARLY


def _best(values: Sequence[Any], higher_is_better: bool) -> float:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if higher_is_better else min(finite)


def trial_row(trial: EndedTrial, max_epochs: int) -> dict[str, Any]:
    """The results.csv row of one trial."""
    row: dict[str, Any] = {
        "trial": trial.number,
        "trial_id": trial.trial_id,
        "state": trial_state(trial, max_epochs),
        "epochs": len(trial.history),
        "error": trial.error or "",
        "restarts": trial.restarts,
        "restart_reason": trial.restart_reason,
        **trial.columns,
    }
    last = trial.history[-1] if trial.history else {}
    for key in METRIC_KEYS:
        value = last.get(key)
        row[f"last_{key}"] = math.nan if value is None else value
    for key in METRIC_KEYS:
        row[f"best_{key}"] = _best([r.get(key) for r in trial.history], HIGHER_IS_BETTER[key])
    tail = tail_mean(trial.history)
    for key in METRIC_KEYS:
        row[f"tail_{key}"] = tail.get(key, math.nan)
    return row


def results_table(
    trials: Iterable[EndedTrial], max_epochs: int, columns: Sequence[str], objectives: Sequence[str] = ()
) -> pd.DataFrame:
    """results.csv as a DataFrame: one row per trial in the order given, the config `columns` after the
    identifying ones; with `objectives` (a study of several) the ``pareto`` column: the completed
    trials on the front of the completed trials' ``tail_`` values (`study.front.pareto_column`)."""
    rows = [trial_row(trial, max_epochs) for trial in trials]
    pareto = [PARETO_COLUMN] if objectives else []
    table = pd.DataFrame(rows, columns=[*ID_COLUMNS, *RESTART_COLUMNS, *pareto, *columns, *metric_columns()])
    if objectives:
        table[PARETO_COLUMN] = pareto_column(table, objectives, table["state"] == COMPLETED)
    return table


def best_trial(table: pd.DataFrame, metric: str, mode: str) -> int | None:
    """The number of the trial with the best last value of `metric` among the completed trials (all
    trials that did not fail if none completed); None when no trial has a value."""
    candidates = table[table["state"] == COMPLETED]
    if candidates[f"last_{metric}"].notna().sum() == 0:
        candidates = table[table["state"] != FAILED]
    values = candidates[f"last_{metric}"].dropna()
    if values.empty:
        return None
    index = values.idxmax() if mode == "max" else values.idxmin()
    return int(candidates.loc[index, "trial"])


def count_states(table: pd.DataFrame) -> dict[str, int]:
    """How many trials ended in each state (every state listed, 0 included)."""
    counts = table["state"].value_counts()
    return {state: int(counts.get(state, 0)) for state in STATES}


def states_text(counts: Mapping[str, int]) -> str:
    """``3 completed, 16 stopped early, 1 failed``."""
    return ", ".join(f"{counts.get(state, 0)} {state.replace('_', ' ')}" for state in STATES)


def most_common_error(table: pd.DataFrame) -> tuple[str, int] | None:
    """The reason most failed trials of results.csv failed for, and how many did (None: none failed)."""
    errors = table.loc[table["state"] == FAILED, "error"].fillna("").astype(str)
    counted = Counter(reason or "no reason recorded" for reason in errors)
    return counted.most_common(1)[0] if counted else None


# ---------------------------------------------------------------- a trial's restarts


def restart_line(reason: str, run: int, epoch: int) -> str:
    """One line of a trial's ``restarts.jsonl``: why it restarted, in which driver run, after which
    epoch it had reported."""
    return json_line({"reason": " ".join(reason.split()), "run": run, "epoch": epoch})


def parse_restarts(text: str, where: str) -> list[dict[str, Any]]:
    """The restarts in the text of a ``restarts.jsonl`` (`where` names it); `UserError` for a broken line."""
    restarts = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            restart = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(restart, dict) or not isinstance(restart.get("reason"), str):
            raise UserError(f"{where}: line {number} is not an object with a 'reason'")
        restarts.append(restart)
    return restarts


# ---------------------------------------------------------------- results.csv against the study's record


def load_optuna_study(journal: Path, name: str) -> Any:
    """The Optuna study in a `JournalStorage` file, read only: the one named `name`, or the only one
    there. A `UserError` when the journal cannot be read or names several other studies."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
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


def journal_states(journal_study: Any) -> dict[int, str]:
    """Each trial's number and state in an Optuna study read from the journal, as results.csv names the
    states (a trial that has not ended: its Optuna state's name in lower case, e.g. ``running``)."""
    return {
        t.number: JOURNAL_STATES.get(t.state.name, t.state.name.lower())
        for t in journal_study.get_trials(deepcopy=False)
    }


def check_results(
    table: pd.DataFrame, study: Mapping[str, Any], path: Path, journal: Mapping[int, str] | None = None
) -> None:
    """Refuse a results.csv (`path`) whose trials are not the study's: trial numbers 0..num_samples-1
    once each as study.json records num_samples, its count by state study.json's ``states``, and each
    trial's state the `journal`'s (from `journal_states`) when there is one."""
    numbers = list(table["trial"])
    expected = study.get("num_samples")
    if isinstance(expected, int) and sorted(numbers) != list(range(expected)):
        raise UserError(
            f"{path}: holds {len(numbers)} trial row(s), numbered {_numbers_text(numbers)}, but study.json "
            f"records {expected} trials (0..{expected - 1}); the file is incomplete or not this study's"
        )
    recorded = study.get("states")
    if isinstance(recorded, dict):
        counts = count_states(table)
        if any(counts[state] != recorded.get(state, 0) for state in STATES):
            raise UserError(
                f"{path}: its trials are {states_text(counts)}, but study.json records "
                f"{states_text(recorded)}; the file is not this study's as it ended"
            )
    if journal is not None:
        if sorted(journal) != sorted(numbers):
            raise UserError(
                f"{path}: holds trials {_numbers_text(numbers)}, but {JOURNAL} holds "
                f"{_numbers_text(list(journal))}; the two do not belong together"
            )
        for number, state in zip(numbers, table["state"], strict=True):
            if journal[number] != state:
                raise UserError(
                    f"{path}: trial {number} is {state} there but {journal[number]} in {JOURNAL}; the two "
                    "do not belong together"
                )


def _check_pareto(frame: pd.DataFrame, path: Path) -> None:
    """results.csv's ``pareto`` holds True or False, True only for completed trials (a trial ASHA
    stopped or that failed is never a front point); `UserError` naming the file otherwise. Turns the
    column into booleans."""
    text = frame[PARETO_COLUMN].astype(str).str.strip().str.lower()
    if not text.isin(["true", "false"]).all():
        raise UserError(f"{path}: the {PARETO_COLUMN} column must hold True or False in every row")
    frame[PARETO_COLUMN] = text == "true"
    off = frame.loc[frame[PARETO_COLUMN] & (frame["state"] != COMPLETED), "trial"]
    if len(off):
        raise UserError(
            f"{path}: trial {int(off.iloc[0])} is on the Pareto front but not completed; only trials that "
            "trained the full budget can be"
        )


def _numbers_text(numbers: Sequence[int]) -> str:
    ordered = sorted(numbers)
    if not ordered:
        return "none"
    consecutive = ordered == list(range(ordered[0], ordered[-1] + 1))
    return f"{ordered[0]}..{ordered[-1]}" if consecutive else str(ordered)


# ---------------------------------------------------------------- the study folder


class StudyFolder:
    """The files of one study folder, each with its reader and writer."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.study_json = self.path / STUDY_JSON
        self.results_csv = self.path / RESULTS_CSV
        self.hypervolume_csv = self.path / HYPERVOLUME_CSV
        self.best_config_json = self.path / BEST_CONFIG_JSON
        self.baselines_json = self.path / BASELINES_JSON
        self.journal = self.path / JOURNAL  # the Optuna journal; its study is named as the folder
        self.reproduce = self.path / REPRODUCE_DIR

    def trial_folder(self, number: int) -> Path:
        """Trial `number`'s run folder."""
        return self.path / TRIALS_DIR / trial_dirname(number)

    def trial_metrics(self, number: int) -> Path:
        """Trial `number`'s per-epoch metrics."""
        return self.trial_folder(number) / METRICS_FILE

    def trial_config_json(self, number: int) -> Path:
        """The configuration trial `number` trained with (written by `mtan.train` before its first epoch)."""
        return self.path / TRIALS_DIR / trial_dirname(number) / CONFIG_FILE

    def seed_run(self, config: str, seed: int) -> Path:
        """The `mtan.train` run folder of retrained configuration `config` on `seed`."""
        return self.reproduce / config / seed_dirname(seed)

    def retrained_seeds(self, config: str) -> list[int]:
        """The seeds of `config` that have a run folder under reproduce/, in increasing order."""
        folders = (self.reproduce / config).glob(f"{SEED_DIR_PREFIX}*")
        names = (f.name.removeprefix(SEED_DIR_PREFIX) for f in folders if f.is_dir())
        return sorted(int(n) for n in names if n.isdigit())

    def read_study(self) -> dict[str, Any] | None:
        """study.json, or None when the study has none yet."""
        return read_json_object(self.study_json) if self.study_json.is_file() else None

    def write_study(self, study: Mapping[str, Any]) -> None:
        atomic_write_json(self.study_json, study)

    def read_best_config(self) -> dict[str, Any] | None:
        """best_config.json, or None when there is none (no trial had a value)."""
        return read_json_object(self.best_config_json) if self.best_config_json.is_file() else None

    def write_best_config(self, best: Mapping[str, Any]) -> None:
        atomic_write_json(self.best_config_json, best)

    def read_baselines(self) -> dict[str, Any] | None:
        """baselines.json (the trivial predictors' metrics), or None when there is none."""
        return read_trivial_metrics(self.path) if self.baselines_json.is_file() else None

    def write_baselines(self, baselines: Mapping[str, float]) -> None:
        write_trivial_metrics(self.path, baselines)

    def read_results(self, journal: Mapping[int, str] | None = None) -> pd.DataFrame:
        """results.csv, checked whole and against study.json (and the `journal`'s trial states, when
        given: `journal_states`): ``trial`` as int, ``trial_id``, ``state``, ``error``,
        ``restart_reason`` and ``weighting`` as text."""
        path = self.results_csv
        text = {"trial_id": str, "state": str, "error": str, "restart_reason": str, "weighting": str}
        frame = read_csv(path, dtype=text)
        missing = [c for c in (*ID_COLUMNS, "weighting") if c not in frame.columns]
        study = {} if missing else self.read_study() or {}
        objective = f"last_{study.get('metric', 'score')}"
        missing += [] if objective in frame.columns else [objective]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        trial = pd.to_numeric(frame["trial"], errors="coerce")
        if trial.isna().any() or (trial != trial.round()).any() or trial.duplicated().any():
            raise UserError(f"{path}: the trial column must hold each trial's number once")
        frame["trial"] = trial.astype(int)
        unknown = sorted(set(frame["state"].fillna("(empty)")) - set(STATES))
        if unknown:
            raise UserError(f"{path}: unknown state {unknown[0]!r} (expected one of {', '.join(STATES)})")
        if PARETO_COLUMN in frame.columns:
            _check_pareto(frame, path)
        check_results(frame, study, path, journal)
        return frame

    def write_results(self, table: pd.DataFrame) -> None:
        write_csv(self.results_csv, table)

    def read_hypervolume(self) -> pd.DataFrame | None:
        """hypervolume.csv (a study of several objectives: `study.front.hypervolume_history`), or None
        when there is none."""
        if not self.hypervolume_csv.is_file():
            return None
        frame = read_csv(self.hypervolume_csv)
        missing = [c for c in HYPERVOLUME_COLUMNS if c not in frame.columns]
        if missing:
            raise UserError(f"{self.hypervolume_csv}: missing column(s) {', '.join(missing)}")
        return frame

    def write_hypervolume(self, table: pd.DataFrame) -> None:
        write_csv(self.hypervolume_csv, table)

    def read_trial_metrics(self, number: int, epochs: int | None = None) -> list[dict[str, Any]] | None:
        """Trial `number`'s metrics.jsonl rows, or None when it has none (a trial that never reported);
        with `epochs` (its results.csv row), `UserError` unless it holds epochs 1..`epochs`."""
        path = self.trial_metrics(number)
        rows = read_metrics(self.trial_folder(number)) if path.is_file() else None
        if epochs is not None and [row["epoch"] for row in rows or []] != list(range(1, epochs + 1)):
            held = len(rows) if rows is not None else "no"
            raise UserError(
                f"{path}: holds {held} epoch row(s), results.csv says trial {number} trained {epochs}"
            )
        return rows

    def write_trial_metrics(self, number: int, rows: Sequence[Mapping[str, Any]]) -> None:
        write_metrics(self.trial_folder(number), rows)

    def _read_reproduce_csv(
        self, name: str, columns: Sequence[str], dtype: Mapping[str, Any] | None = None
    ) -> pd.DataFrame | None:
        path = self.reproduce / name
        if not path.is_file():
            return None
        frame = read_csv(path, dtype=dtype)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        return frame

    def read_reproduce_summary(self) -> pd.DataFrame | None:
        """reproduce/summary.csv (``config``, ``metric``, ``mean``, ``std``, ``ci_low``, ``ci_high``,
        ``n``), or None when there is none."""
        columns = ("config", "metric", "mean", "std", "n")
        return self._read_reproduce_csv(SUMMARY_CSV, columns, {"config": str, "metric": str})

    def read_reproduce_configs(self) -> pd.DataFrame | None:
        """reproduce/configs.csv (``config``, ``trial``, ``trial_id``, ``roles``, ...), or None."""
        text = {"config": str, "trial_id": str, "roles": str, "weighting": str}
        frame = self._read_reproduce_csv(CONFIGS_CSV, ("config", "roles"), text)
        if frame is not None:
            frame["roles"] = frame["roles"].fillna("").astype(str)
        return frame

    def read_reproduce_comparisons(self) -> pd.DataFrame | None:
        """reproduce/comparisons.csv (``comparison``, ``metric``, ``mean_diff``, ...), or None."""
        columns = ("comparison", "metric", "mean_diff", "p_value", "n")
        return self._read_reproduce_csv(COMPARISONS_CSV, columns)


def write_results(
    folder: StudyFolder,
    trials: Sequence[EndedTrial],
    *,
    metric: str,
    mode: str,
    max_epochs: int,
    columns: Sequence[str],
    summary: Mapping[str, Any],
    objectives: Sequence[str] = (),
) -> pd.DataFrame:
    """Write results.csv, best_config.json and study.json (each trial's metrics.jsonl is in its folder).

    `summary` is study.json's settings part (num_samples, space, hardware, versions, ...); this adds the
    counts by state, the epochs trained and the best trial (by `metric`), and with `objectives` (a study
    of several) the trials on the Pareto front. Returns the results table.
    """
    table = results_table(trials, max_epochs, columns, objectives)
    folder.write_results(table)

    best_number = best_trial(table, metric, mode)
    best = next((t for t in trials if t.number == best_number), None)
    if best is not None:
        folder.write_best_config(
            {
                "trial": best.number,
                "trial_id": best.trial_id,
                "metric": metric,
                "mode": mode,
                "value": best.history[-1][metric],
                "config": dict(best.config),
                "metrics": dict(best.history[-1]),
                "point": dict(best.point),
            }
        )
    folder.write_study(
        {
            **summary,
            "states": count_states(table),
            "epochs_trained": int(table["epochs"].sum()),
            "epochs_budget": int(summary["num_samples"]) * max_epochs,
            "best_trial": best_number,
            "best_trial_id": best.trial_id if best is not None else None,
            **(
                {"pareto_trials": [int(n) for n in table.loc[table[PARETO_COLUMN], "trial"]]}
                if objectives
                else {}
            ),
        }
    )
    return table
