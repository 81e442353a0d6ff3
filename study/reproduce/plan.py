"""What a confirmation retrains and compares: the candidate configurations of a finished study (its best,
or its top K and both published configurations), their paired comparisons, the first fresh seed, and
configs.csv. Pure (pandas; no Ray)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mtan.errors import UserError
from mtan.run_folder import check_config
from study.record import COMPLETED, StudyFolder, trial_dirname
from study.space import PUBLISHED, SearchSpace

# The study's trials 0 and 1 are the published configurations (`study.space.PUBLISHED`, in that order).
CONFIG_TABLE_COLUMNS = (
    "config", "trial", "trial_id", "roles", "weighting", "study_last", "study_tail", "state"
)  # fmt: skip
# Every `TrainConfig` field a search space may set (results.csv has a column for each it searched).
SEARCHED_FIELDS: tuple[str, ...] = SearchSpace(uncertainty=True, tune_lr=True).fields


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: its name (``trial_NNN``, or `paper` / `seed_report`), the study trial
    it comes from, why it is retrained, and its flat `TrainConfig` (the seed is set per run)."""

    name: str
    trial: int
    trial_id: str
    roles: tuple[str, ...]
    weighting: str
    study_last: float
    study_tail: float
    state: str
    config: dict[str, Any]


def read_best_config(results_dir: Path) -> dict[str, Any]:
    """The study's best_config.json, its ``config`` checked as a `TrainConfig`; `UserError` naming the
    file when the folder holds no finished study or the file is not valid JSON or not a study's."""
    folder = StudyFolder(Path(results_dir))
    best = folder.read_best_config()
    if best is None:
        raise UserError(
            f"{folder.best_config_json}: not found; RESULTS_DIR must be a finished study's folder "
            "(STORAGE/NAME)"
        )
    if not isinstance(best.get("config"), dict):
        raise UserError(f"{folder.best_config_json}: expected a JSON object with the best trial's config")
    check_config(best["config"], folder.best_config_json)
    return best


def first_fresh_seed(best: dict[str, Any], table: pd.DataFrame) -> int:
    """The seed after every seed of the study: trial n trained with the study's seed + n."""
    study_seed = int(best["config"].get("seed", 0)) - int(best.get("trial", 0))
    return study_seed + int(table["trial"].max()) + 1


def trial_config(best: dict[str, Any], row: pd.Series) -> dict[str, Any]:
    """The flat config of a trial of `results.csv`: the best trial's config (every trial shares all but
    the searched fields and the seed) with the trial's searched fields."""
    flat = dict(best["config"])
    for column in SEARCHED_FIELDS:
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # not searched, or not a field of this trial's method (temperature of equal)
        value = value.item() if hasattr(value, "item") else value
        if isinstance(flat.get(column), int) and isinstance(value, float) and value.is_integer():
            value = int(value)  # a CSV column with an empty cell reads as floats
        flat[column] = value
    return flat


def confirmation_candidates(best: dict[str, Any], table: pd.DataFrame, top: int | None) -> list[Candidate]:
    """The configurations to retrain, best first: with `top` None the best trial alone; otherwise the
    `top` best completed trials by the study's metric (last epoch, as the study ranked them), then the
    published configurations not among them. A published trial is named `paper` / `seed_report` in both
    modes, so its runs are shared between them."""
    metric, mode = best["metric"], best["mode"]
    if top is None:
        ranked = [int(best["trial"])]
    else:
        completed = table[table["state"] == COMPLETED].dropna(subset=[f"last_{metric}"])
        ordered = completed.sort_values(f"last_{metric}", ascending=(mode == "min"), kind="stable")
        ranked = [int(t) for t in ordered["trial"].head(top)]
    roles: dict[int, list[str]] = {trial: [f"top {rank}"] for rank, trial in enumerate(ranked, start=1)}
    published = dict(enumerate(PUBLISHED))  # trial number -> name
    for trial, name in published.items():
        if trial in set(table["trial"]) and (top is not None or trial in roles):
            roles.setdefault(trial, []).append(name)
    rows = table.set_index("trial")
    candidates = []
    for trial, trial_roles in roles.items():
        row = rows.loc[trial]
        config = trial_config(best, row)
        candidates.append(
            Candidate(
                name=published.get(trial, trial_dirname(trial)),
                trial=trial,
                trial_id=str(row.get("trial_id", "")),
                roles=tuple(trial_roles),
                weighting=str(config["weighting"]),
                study_last=float(row.get(f"last_{metric}", math.nan)),
                study_tail=float(row.get(f"tail_{metric}", math.nan)),
                state=str(row.get("state", "")),
                config=config,
            )
        )
    return candidates


def comparison_pairs(candidates: Sequence[Candidate]) -> list[tuple[str, str, str]]:
    """(name, a, b) of the paired comparisons a - b: the best configuration of every other weighting
    against the best equal one ("best" = first in `candidates`' order), and each top trial against the
    paper's configuration (once: a top trial that is the best of its weighting, compared with the paper's
    as the best equal one, is not compared again)."""
    best_of: dict[str, str] = {}
    for candidate in candidates:
        best_of.setdefault(candidate.weighting, candidate.name)
    pairs = []
    if "equal" in best_of:
        for weighting, name in best_of.items():
            if weighting != "equal":
                pairs.append(
                    (f"best {weighting} ({name}) vs best equal ({best_of['equal']})", name, best_of["equal"])
                )
    names = {c.name for c in candidates}
    compared = {(a, b) for _, a, b in pairs}
    if "paper" in names:
        for candidate in candidates:
            top = any(r.startswith("top ") for r in candidate.roles)
            if top and candidate.name != "paper" and (candidate.name, "paper") not in compared:
                pairs.append((f"{candidate.name} vs paper", candidate.name, "paper"))
    return pairs


def check_counts(seeds: int, top: int | None) -> None:
    """`UserError` naming the flag when --seeds or --top is below 1."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, got {top}")


def configs_table(candidates: Sequence[Candidate]) -> pd.DataFrame:
    """configs.csv: each retrained configuration, the trial it comes from and its values in the study."""
    rows = [
        (c.name, c.trial, c.trial_id, "; ".join(c.roles), c.weighting, c.study_last, c.study_tail, c.state)
        for c in candidates
    ]
    return pd.DataFrame(rows, columns=list(CONFIG_TABLE_COLUMNS))
