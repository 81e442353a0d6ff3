"""What a confirmation retrains and compares: the candidate configurations of a finished study (its best;
its top K; or the K best of each weighting method; the last two with both published configurations; or
every trial on a multi-objective study's Pareto front), with the configuration each trial trained with
(its ``trials/trial_NNN/config.json``), the single-task baselines that Delta_m measures them against (one
per task, in every mode), their paired comparisons, the fresh seeds after the study's recorded seed, and
configs.csv. No Ray."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from mtan.errors import UserError
from mtan.run_folder import CONFIG_FILE, check_config, read_config
from mtan.tasks import TASKS
from study.record import COMPLETED, PARETO_COLUMN, PARETO_ROLE, STOPPED_EARLY, StudyFolder, trial_dirname
from study.space import PAPER, PUBLISHED

# The study's trials 0 and 1 are the published configurations (`study.space.PUBLISHED`, in that order).
CONFIG_TABLE_COLUMNS = (
    "config", "trial", "trial_id", "roles", "weighting", "study_last", "study_tail", "state"
)  # fmt: skip
# The baselines every weighting method's best is compared against, in this order: equal
# weighting, then linear scalarization (fixed task weights) where the study searched it (Kurin et al.
# 2022, arXiv 2201.04122; Xin et al. 2022, arXiv 2209.11379).
REFERENCE_WEIGHTINGS: tuple[str, ...] = ("equal", "scalarization")
# The trial whose configuration the single-task baselines train on one task each: the paper's (MTAN's
# "One Task" row was trained with MTAN's own protocol); its config.json is the study's base config with
# the paper's point (no weight decay, StepLR at half the budget, gamma 0.5).
SINGLE_TASK_TRIAL = PUBLISHED.index(PAPER)


def single_task_name(task: str) -> str:
    """The configuration name (and folder under reproduce/) of `task`'s single-task runs: `stl_depth`."""
    return f"stl_{task}"


def single_task_role(task: str) -> str:
    """The role of `task`'s single-task runs in configs.csv: `stl depth`."""
    return f"stl {task}"


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: its name (``trial_NNN``, or `paper` / `seed_report`), the study trial
    it comes from, why it is retrained, and the flat `TrainConfig` that trial trained with, its
    config.json (the seed is set per run). A single-task baseline (`stl_depth`) was no trial of the
    study: no trial, no values in the study, no state, its config that of `SINGLE_TASK_TRIAL` on one task."""

    name: str
    trial: int | None
    trial_id: str
    roles: tuple[str, ...]
    weighting: str
    study_last: float
    study_tail: float
    state: str
    config: Mapping[str, Any]

    @property
    def single_task(self) -> str | None:
        """The task of a single-task baseline, None for a multi-task configuration."""
        return self.config.get("single_task")


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


def read_trial_config(folder: StudyFolder, number: int) -> dict[str, Any] | None:
    """The flat `TrainConfig` trial `number` trained with, its ``config.json``; None when it has none (it
    failed before training began)."""
    path = folder.trial_config_json(number)
    return read_config(path.parent) if path.is_file() else None


def best_role(rank: int, weighting: str) -> str:
    """The role of a trial ranked `rank` among its weighting method's trials (the completed ones, then
    those ASHA stopped, longest trained first: `ranked_of_method`): `best 2 of dwa`."""
    return f"best {rank} of {weighting}"


def study_weightings(folder: StudyFolder) -> tuple[str, ...]:
    """The weighting methods the study searched, in its order: the choices of the ``weighting`` column
    of study.json's ``space``; `UserError` naming study.json when it does not record them."""
    study = folder.read_study() or {}
    space = study.get("space") if isinstance(study.get("space"), dict) else {}
    for column in space.get("columns") or []:
        if isinstance(column, dict) and column.get("name") == "weighting":
            searched = column.get("searched")
            if isinstance(searched, list) and searched:
                return tuple(str(weighting) for weighting in searched)
    raise UserError(
        f"{folder.study_json}: no searched weighting methods recorded (the space's 'weighting' column), "
        "which --per-weighting-best needs"
    )


def ranked_completed(table: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """The completed trials with a value of `metric` at their last epoch, best first, as the study ranked
    them (ties in trial order)."""
    completed = table[table["state"] == COMPLETED].dropna(subset=[f"last_{metric}"])
    return completed.sort_values(f"last_{metric}", ascending=(mode == "min"), kind="stable")


def ranked_of_method(table: pd.DataFrame, weighting: str, metric: str, mode: str) -> pd.DataFrame:
    """The trials of one weighting method that ``--per-weighting-best`` ranks, best first: its completed
    trials as the study ranked them, then those ASHA stopped, the longest trained first (ASHA compares
    trials at the same epoch only), then by their last value of `metric`. A method none of whose trials
    completed is so still confirmed by its best, retrained with the full budget like every other."""
    of_method = table[table["weighting"] == weighting]
    stopped = of_method[of_method["state"] == STOPPED_EARLY].dropna(subset=[f"last_{metric}"])
    stopped = stopped.assign(_value=stopped[f"last_{metric}"] * (1 if mode == "min" else -1))
    stopped = stopped.sort_values(["epochs", "_value"], ascending=[False, True], kind="stable")
    completed = ranked_completed(of_method, metric, mode)
    return pd.concat([completed, stopped.drop(columns="_value")])


def selected_roles(
    best: dict[str, Any],
    table: pd.DataFrame,
    top: int | None,
    per_weighting_best: int | None = None,
    weightings: Sequence[str] = (),
    pareto: bool = False,
) -> dict[int, list[str]]:
    """Trial number -> why it is retrained, in retraining order. With `per_weighting_best` K the K best
    trials of each method of `weightings` (`best 1 of dwa`, ...; `ranked_of_method`), method by method;
    with `top` K the K best completed trials (`top 1`, ...); with `pareto` every trial on the study's
    Pareto front (results.csv's ``pareto``; `pareto front`), in trial order; with none of them the best
    trial (`top 1`). The published configurations (`paper`, `seed_report`) follow, in the first two modes
    always, otherwise only when one of the trials chosen is one."""
    ranked = ranked_completed(table, best["metric"], best["mode"])
    if pareto:
        roles = {int(trial): [PARETO_ROLE] for trial in table.loc[table[PARETO_COLUMN], "trial"]}
    elif per_weighting_best is not None:
        roles: dict[int, list[str]] = {}
        for weighting in weightings:
            of_method = ranked_of_method(table, weighting, best["metric"], best["mode"])["trial"]
            of_method = of_method.head(per_weighting_best)
            for rank, trial in enumerate(of_method, start=1):
                roles[int(trial)] = [best_role(rank, weighting)]
    elif top is not None:
        roles = {int(trial): [f"top {rank}"] for rank, trial in enumerate(ranked["trial"].head(top), start=1)}
    else:
        roles = {int(best["trial"]): ["top 1"]}
    with_published = top is not None or per_weighting_best is not None
    for trial, name in enumerate(PUBLISHED):
        if trial in set(table["trial"]) and (with_published or trial in roles):
            roles.setdefault(trial, []).append(name)
    return roles


def confirmation_candidates(
    best: dict[str, Any],
    table: pd.DataFrame,
    config_of: Callable[[int], Mapping[str, Any] | None],
    top: int | None,
    per_weighting_best: int | None = None,
    weightings: Sequence[str] = (),
    pareto: bool = False,
) -> tuple[list[Candidate], list[str]]:
    """The configurations to retrain, in `selected_roles`' order, and a note per published configuration
    left out. A published trial is named `paper` / `seed_report` in every mode, so its runs are shared
    between them. `config_of(n)`: the configuration trial n trained with, None when it wrote none: then a
    published configuration is left out with a note (it failed before training began), and a ranked
    trial, which trained, is a `UserError` naming the missing file."""
    metric = best["metric"]
    published = dict(enumerate(PUBLISHED))  # trial number -> name
    rows = table.set_index("trial")
    candidates, notes = [], []
    chosen = selected_roles(best, table, top, per_weighting_best, weightings, pareto)
    for trial, trial_roles in chosen.items():
        row = rows.loc[trial]
        config = config_of(trial)
        if config is None:
            if set(trial_roles) - set(PUBLISHED):
                raise UserError(f"trial {trial}: no {CONFIG_FILE} in its folder, though it trained")
            notes.append(f"{published[trial]}: not retrained, trial {trial} has no {CONFIG_FILE} (it failed)")
            continue
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
    return candidates, notes


def top_notes(table: pd.DataFrame, best: Mapping[str, Any], top: int | None) -> tuple[str, ...]:
    """A note when ``--top K`` asks for more trials than completed their budget: only those are ranked."""
    if top is None:
        return ()
    completed = len(ranked_completed(table, best["metric"], best["mode"]))
    if completed >= top:
        return ()
    return (
        f"--top {top}: {completed} trial(s) of the study completed their budget, so {completed} top trial(s) "
        "are retrained (trials stopped early are not ranked with --top; --per-weighting-best K retrains "
        "each method's best, stopped ones included)",
    )


def method_notes(candidates: Sequence[Candidate], weightings: Sequence[str]) -> tuple[str, ...]:
    """A note for each weighting method of ``--per-weighting-best`` whose ranked trials are not all
    completed ones: those stopped early retrained in their place, or none at all."""
    notes = []
    for weighting in weightings:
        roles = {best_role(rank, weighting) for rank in range(1, len(candidates) + 1)}
        ranked = [c for c in candidates if roles & set(c.roles)]
        stopped = [c for c in ranked if c.state == STOPPED_EARLY]
        if not ranked:
            notes.append(
                f"{weighting}: no trial of the study trained, so none of its configurations is retrained"
            )
        elif stopped:
            names = ", ".join(f"{c.name} (stopped by ASHA)" for c in stopped)
            notes.append(
                f"{weighting}: fewer completed trials than asked for, so its best stopped early are "
                f"retrained with the full budget too: {names}"
            )
    return tuple(notes)


def single_task_candidates(
    table: pd.DataFrame, config_of: Callable[[int], Mapping[str, Any] | None]
) -> tuple[list[Candidate], list[str]]:
    """The single-task baselines, one per task of `mtan.tasks.TASKS` (`stl_segmentation`, `stl_depth`):
    the configuration of trial `SINGLE_TASK_TRIAL` (the paper's) with ``single_task`` set, and equal
    weighting, the only one a single task has. None, with a note, when that trial wrote no configuration
    (it failed before training began)."""
    config = config_of(SINGLE_TASK_TRIAL) if SINGLE_TASK_TRIAL in set(table["trial"]) else None
    if config is None:
        note = (
            f"single-task runs: not trained, trial {SINGLE_TASK_TRIAL} ({PAPER}) has no {CONFIG_FILE} (it "
            "failed), so there is no Delta_m"
        )
        return [], [note]
    candidates = [
        Candidate(
            name=single_task_name(task),
            trial=None,
            trial_id="",
            roles=(single_task_role(task),),
            weighting="equal",
            study_last=math.nan,
            study_tail=math.nan,
            state="",
            config={**config, "single_task": task, "weighting": "equal"},
        )
        for task in TASKS
    ]
    return candidates, []


def best_of_each_weighting(candidates: Sequence[Candidate]) -> dict[str, str]:
    """Weighting method -> the name of its best candidate: the one ranked `best 1 of` it when the
    candidates are the best of each method; otherwise the first of it in `candidates`' order (the top
    trials best first, then the published configurations)."""
    ranked = {c.weighting: c.name for c in candidates if best_role(1, c.weighting) in c.roles}
    first: dict[str, str] = {}
    for candidate in candidates:
        first.setdefault(candidate.weighting, candidate.name)
    return ranked or first


def comparison_pairs(candidates: Sequence[Candidate]) -> list[tuple[str, str, str]]:
    """(name, a, b) of the paired comparisons a - b: the best configuration of every other weighting
    method against the best equal one, then against the best scalarization one where there is one
    (`REFERENCE_WEIGHTINGS`; scalarization against equal once); then each top trial against the paper's
    configuration (once: a top trial that is the best of its weighting, compared with the paper's as the
    best equal one, is not compared again)."""
    best_of = best_of_each_weighting(candidates)
    pairs = []
    for index, reference in enumerate(REFERENCE_WEIGHTINGS):
        if reference not in best_of:
            continue
        for weighting, name in best_of.items():
            if weighting not in REFERENCE_WEIGHTINGS[: index + 1]:
                label = f"best {weighting} ({name}) vs best {reference} ({best_of[reference]})"
                pairs.append((label, name, best_of[reference]))
    names = {c.name for c in candidates}
    compared = {(a, b) for _, a, b in pairs}
    if "paper" in names:
        for candidate in candidates:
            top = any(r.startswith("top ") for r in candidate.roles)
            if top and candidate.name != "paper" and (candidate.name, "paper") not in compared:
                pairs.append((f"{candidate.name} vs paper", candidate.name, "paper"))
    return pairs


def check_counts(
    seeds: int, top: int | None, per_weighting_best: int | None = None, pareto: bool = False
) -> None:
    """`UserError` naming the flag when --seeds, --top or --per-weighting-best is below 1, or when more
    than one of --top, --per-weighting-best and --pareto is given."""
    if top is not None and per_weighting_best is not None:
        raise UserError("--top and --per-weighting-best: give one (the K best overall, or of each method)")
    if pareto and (top is not None or per_weighting_best is not None):
        flag = "--top" if top is not None else "--per-weighting-best"
        raise UserError(f"--pareto and {flag}: give one (every front point, or the best by the score)")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    for flag, count in (("--top", top), ("--per-weighting-best", per_weighting_best)):
        if count is not None and count < 1:
            raise UserError(f"{flag} must be at least 1, got {count}")


def configs_table(candidates: Sequence[Candidate]) -> pd.DataFrame:
    """configs.csv: each retrained configuration, the trial it comes from (none for a single-task
    baseline) and its values in the study."""
    rows = [
        (c.name, c.trial, c.trial_id, "; ".join(c.roles), c.weighting, c.study_last, c.study_tail, c.state)
        for c in candidates
    ]
    table = pd.DataFrame(rows, columns=list(CONFIG_TABLE_COLUMNS))
    return table.astype({"trial": "Int64"})  # an integer column with empty cells


@dataclass(frozen=True)
class ConfirmationPlan:
    """What a confirmation will do: the study's metric and its direction, the candidates, the single-task
    baselines, the fresh seeds every one of them trains on, the paired comparisons (of candidates), and a
    line per weighting method represented by stopped trials or left out, or baseline missing."""

    metric: str
    mode: str
    candidates: tuple[Candidate, ...]
    seeds: tuple[int, ...]
    pairs: tuple[tuple[str, str, str], ...]
    notes: tuple[str, ...]
    single_task: tuple[Candidate, ...] = ()
    objectives: tuple[str, ...] = ()  # --pareto: the study's objectives, each judged on its interval

    @property
    def trained(self) -> tuple[Candidate, ...]:
        """Every configuration trained: the candidates, then the single-task baselines."""
        return (*self.candidates, *self.single_task)


def study_objectives(folder: StudyFolder, table: pd.DataFrame) -> tuple[str, ...]:
    """The objectives of a multi-objective study as study.json records them, for ``--pareto``;
    `UserError` naming the file when the study has one objective or its front is empty."""
    objectives = (folder.read_study() or {}).get("objectives")
    if PARETO_COLUMN not in table.columns or not isinstance(objectives, list) or len(objectives) < 2:
        raise UserError(
            f"--pareto: {folder.results_csv} has no Pareto front: the study has one objective (a study "
            "of several: python -m study.run --objectives miou,abs_err)"
        )
    if not table[PARETO_COLUMN].any():
        raise UserError(f"--pareto: no trial of {folder.results_csv} is on the front (none completed)")
    return tuple(str(key) for key in objectives)


def plan_confirmation(
    results_dir: Path,
    seeds: int,
    top: int | None = None,
    per_weighting_best: int | None = None,
    pareto: bool = False,
) -> ConfirmationPlan:
    """The plan of a confirmation of the study in `results_dir`; `UserError` for bad counts or a folder
    without a finished study (with `pareto`, a multi-objective one), before anything is written."""
    check_counts(seeds, top, per_weighting_best, pareto)
    best = read_best_config(results_dir)
    folder = StudyFolder(Path(results_dir))
    table = folder.read_results()
    weightings = study_weightings(folder) if per_weighting_best is not None else ()
    config_of = partial(read_trial_config, folder)
    objectives = study_objectives(folder, table) if pareto else ()
    candidates, left_out = confirmation_candidates(
        best, table, config_of, top, per_weighting_best, weightings, pareto
    )
    single_task, no_single_task = single_task_candidates(table, config_of)
    notes = tuple(left_out) + method_notes(candidates, weightings) + tuple(no_single_task)
    notes += top_notes(table, best, top)
    if not candidates:
        raise UserError(f"{results_dir}: nothing to retrain ({'; '.join(notes) or 'no trial chosen'})")
    if pareto:
        notes += (
            f"the front's configurations are judged on {', '.join(objectives)}: one stays on the front "
            "unless another's whole 95 % interval is better than its own in every objective",
        )
    first = first_fresh_seed(recorded_seed(folder), table)
    return ConfirmationPlan(
        metric=best["metric"],
        mode=best["mode"],
        candidates=tuple(candidates),
        seeds=tuple(range(first, first + seeds)),
        pairs=() if pareto else tuple(comparison_pairs(candidates)),
        notes=notes,
        single_task=tuple(single_task),
        objectives=objectives,
    )
