"""What a confirmation retrains and compares: the candidate configurations of a finished study (its best,
or its top K and both published configurations) with the configuration each trial trained with (its
``trials/trial_NNN/config.json``), their paired comparisons, the first fresh seed, and configs.csv. Pure
(pandas; no Ray)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mtan.config import config_from_flat
from mtan.errors import ConfigError, UserError
from study.record import COMPLETED, StudyFolder, trial_dirname
from study.space import PUBLISHED

# The study's trials 0 and 1 are the published configurations (`study.space.PUBLISHED`, in that order).
CONFIG_TABLE_COLUMNS = (
    "config", "trial", "trial_id", "roles", "weighting", "study_last", "study_tail", "state"
)  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: its name (``trial_NNN``, or `paper` / `seed_report`), the study trial
    it comes from, why it is retrained, and the flat `TrainConfig` that trial trained with (the seed is
    set per run); None when the trial wrote none (it failed before training began)."""

    name: str
    trial: int
    trial_id: str
    roles: tuple[str, ...]
    weighting: str
    study_last: float
    study_tail: float
    state: str
    config: Mapping[str, Any] | None


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
    try:
        config_from_flat(best["config"])
    except ConfigError as error:
        raise ConfigError(f"{folder.best_config_json}: {error}") from None
    return best


def recorded_seed(folder: StudyFolder) -> int:
    """The study's seed as study.json records it (``settings.seed``; trial n trained with it + n);
    `UserError` naming the file when it does not hold one."""
    seed = ((folder.read_study() or {}).get("settings") or {}).get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{folder.study_json}: no study seed recorded (settings.seed)")
    return seed


def first_fresh_seed(study_seed: int, table: pd.DataFrame) -> int:
    """The seed after every seed of the study: trial n trained with the study's seed + n."""
    return study_seed + int(table["trial"].max()) + 1


def confirmation_candidates(
    best: Mapping[str, Any],
    table: pd.DataFrame,
    top: int | None,
    config_of: Callable[[int], Mapping[str, Any] | None],
) -> list[Candidate]:
    """The configurations to retrain, best first: with `top` None the best trial alone; otherwise the
    `top` best completed trials by the study's metric (last epoch, as the study ranked them), then the
    published configurations not among them. A published trial is named `paper` / `seed_report` in both
    modes, so its runs are shared between them. `config_of(n)`: the configuration trial n trained with."""
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
        config = config_of(trial)
        candidates.append(
            Candidate(
                name=published.get(trial, trial_dirname(trial)),
                trial=trial,
                trial_id=str(row.get("trial_id", "")),
                roles=tuple(trial_roles),
                weighting=str(row["weighting"]),
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
