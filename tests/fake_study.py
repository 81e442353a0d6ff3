"""Write a small study results directory for the analysis tests, with the study's own writers.

The numbers are deterministic and made up (a trial's quality is a fixed function of its config), but
the files are written by `study.record` (results.csv, trials/trial_NNN/config.json and metrics.jsonl with
`weight/<task>` (DWA weights computed from the losses by the DWA formula), best_config.json,
study.json with the space of `study.space`, baselines.json), the Optuna journal by the study's search
space (completed, pruned and failed trials), and optionally reproduce/'s tables with the confirmation's
own plan and table writers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState

from mtan.config import config_from_flat
from mtan.files import atomic_write_json
from mtan.metrics import METRIC_KEYS, metric, tail_mean
from study.front import directions, hypervolume_history, maximised, reference_point
from study.record import (
    COMPLETED,
    FAILED,
    STOPPED_EARLY,
    EndedTrial,
    StudyFolder,
    trial_state,
    write_csv,
    write_results,
)
from study.reproduce.plan import SINGLE_TASK_TRIAL, Candidate, plan_confirmation
from study.reproduce.tables import confirmation_tables
from study.space import TRIAL_NUMBER, SearchSpace, logit, train_overrides

TASKS = ("segmentation", "depth")
BASELINES = {
    "miou": 0.08,
    "pixel_acc": 0.40,
    "miou_2019": 0.10,
    "pixel_acc_2019": 0.41,
    "miou_2020": 0.11,
    "abs_err": 0.080,
    "rel_err": 0.90,
    "abs_err_batch_mean": 0.081,
    "rel_err_batch_mean": 0.91,
    "score": 0.0,
}
SPACE = SearchSpace(tune_lr=True)


@dataclass(frozen=True)
class FakeTrial:
    """One trial's config and fate."""

    weighting: str
    lr: float
    weight_decay: float
    step_fraction: float
    gamma: float
    temperature: float | None = None
    depth_share: float | None = None  # scalarization's w
    epochs: int = 9
    state: str = "completed"
    error: str = ""


def default_trials(n: int = 8, *, failed: int = 1, dwa: bool = True) -> list[FakeTrial]:
    """`n` trials: alternating equal/DWA (all equal when `dwa` is False), ASHA-like epoch counts
    (9 = completed, 3 or 1 = stopped early), the last `failed` of them failed."""
    trials = []
    decays = (0.0, 1e-5, 1e-4, 1e-3)
    for i in range(n):
        weighting = "dwa" if dwa and i % 2 else "equal"
        epochs = (9, 3, 1, 9, 1, 3, 1, 1)[i % 8]
        state = "completed" if epochs == 9 else "stopped_early"
        if i >= n - failed:
            epochs, state = 0, "failed"
        trials.append(
            FakeTrial(
                weighting=weighting,
                lr=10 ** (-5 + 2 * ((i * 0.37) % 1)),
                weight_decay=decays[i % 4],
                step_fraction=0.1 + 0.07 * i % 0.9,
                gamma=0.1 + 0.1 * (i % 8),
                temperature=(0.5 + 1.5 * (i % 5)) if weighting == "dwa" else None,
                epochs=epochs,
                state=state,
                error="RuntimeError: CUDA out of memory" if state == "failed" else "",
            )
        )
    return trials


def scalarization_trials(shares: Sequence[float] = (0.3, 0.8)) -> list[FakeTrial]:
    """Completed scalarization trials, one per depth share, at a learning rate that is not the best: with
    them the completed trials cover every weighting of the default space (Optuna's importances need each
    value twice)."""
    return [FakeTrial("scalarization", 1e-3, 0.0, 0.5, 0.5, depth_share=share) for share in shares]


def _quality(trial: FakeTrial) -> tuple[float, float]:
    """Fixed (segmentation, depth) qualities in (0, 1) from the config."""
    lr_fit = math.exp(-((math.log10(trial.lr) + 4.0) ** 2))
    seg = 0.35 + 0.5 * lr_fit - 0.05 * trial.gamma + (0.05 if trial.weighting == "dwa" else 0.0)
    depth = 0.30 + 0.45 * lr_fit + 0.1 * trial.gamma - 20.0 * trial.weight_decay
    return min(max(seg, 0.05), 0.95), min(max(depth, 0.05), 0.95)


def trial_metrics(trial: FakeTrial) -> list[dict[str, float]]:
    """The per-epoch rows of `metrics.jsonl` for one trial."""
    seg_q, depth_q = _quality(trial)
    rows, losses = [], {t: [] for t in TASKS}
    for epoch in range(1, trial.epochs + 1):
        progress = 1.0 - math.exp(-epoch / 3.0)
        seg, depth = seg_q * progress, depth_q * progress
        losses["segmentation"].append(2.0 * (1.0 - seg) + 0.1)
        losses["depth"].append(0.05 * (1.0 - depth) + 0.01)
        if trial.weighting == "dwa" and epoch > 2:
            temperature = trial.temperature or 2.0
            ratios = {t: losses[t][-2] / losses[t][-3] for t in TASKS}
            exps = {t: math.exp(r / temperature) for t, r in ratios.items()}
            weights = {t: len(TASKS) * exps[t] / sum(exps.values()) for t in TASKS}
        elif trial.weighting == "scalarization":
            share = trial.depth_share or 0.5
            weights = {"segmentation": 2 * (1 - share), "depth": 2 * share}
        else:
            weights = {t: 1.0 for t in TASKS}
        row: dict[str, float] = {
            "epoch": epoch,
            "lr": trial.lr * trial.gamma ** (epoch // max(1, round(trial.step_fraction * 9))),
        }
        for t in TASKS:
            row[f"loss/{t}"] = losses[t][-1]
            row[f"weight/{t}"] = weights[t]
        for m in ("miou", "pixel_acc", "miou_2019", "pixel_acc_2019", "miou_2020"):
            bump = 0.0 if m in ("miou", "pixel_acc") else 0.1
            row[m] = BASELINES[m] + (1 - BASELINES[m]) * min(seg + bump * seg, 0.99)
        for m in ("abs_err", "rel_err", "abs_err_batch_mean", "rel_err_batch_mean"):
            row[m] = BASELINES[m] * (1.0 - depth)
        row["score"] = 0.5 * (
            (row["miou"] - BASELINES["miou"]) / (1 - BASELINES["miou"])
            + (BASELINES["abs_err"] - row["abs_err"]) / BASELINES["abs_err"]
        )
        row["seconds"] = 1.5
        rows.append(row)
    return rows


def _write_optuna_journal(
    path: Path,
    name: str,
    space: SearchSpace,
    trials: Sequence[EndedTrial],
    states: Sequence[str],
    objectives: Sequence[str] = (),
) -> None:
    """The journal as the study writes it: each point suggested by the real space (so the names and
    distributions are the study's), its scores as intermediate values, stopped trials pruned; with
    `objectives` one direction each, a completed trial's values its objectives' last-10-epoch means and
    no intermediate values."""
    import optuna

    from study.search.journal import journal_storage
    from study.search.searcher import RAY_TRIAL_ID  # imports Ray Tune: only where a journal is written

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=journal_storage(path),
        directions=directions(objectives) if objectives else ["maximize"],
    )
    for ended, state in zip(trials, states, strict=True):
        study.enqueue_trial(dict(ended.point))
        trial = study.ask()
        space(trial)
        trial.set_user_attr(RAY_TRIAL_ID, ended.trial_id)
        for row in ended.history if not objectives else ():
            trial.report(row["score"], int(row["epoch"]))
        if state == COMPLETED:
            tail = tail_mean(ended.history)
            study.tell(trial, [tail[k] for k in objectives] if objectives else ended.history[-1]["score"])
        else:
            study.tell(trial, state=TrialState.PRUNED if state == STOPPED_EARLY else TrialState.FAIL)


def write_fake_confirmation(
    folder: StudyFolder,
    table: pd.DataFrame,
    *,
    per_weighting_best: int | None = None,
    single_task: bool = False,
    pareto: bool = False,
) -> None:
    """reproduce/ as `study.reproduce --top 1 --seeds 3` (`--per-weighting-best K`, `--pareto`) writes it,
    by its own plan and table functions: the chosen trials and the published ones, each seed within 1 %
    (times the config's position) of its study value, and the single-task baselines 2 % better than the
    paper's trial on their task's metrics (the other task's absent, NaN, as from a single-task run), with
    Delta_m, when `single_task` (a confirmation from before the single-task baselines has none)."""
    plan = plan_confirmation(
        folder.path,
        seeds=3,
        top=None if per_weighting_best or pareto else 1,
        per_weighting_best=per_weighting_best,
        pareto=pareto,
    )
    if not single_task:
        plan = dataclasses.replace(plan, single_task=())
    rows = table.set_index("trial")

    # the trial each configuration's values come from: a single-task baseline's is the paper's
    source = {c.name: SINGLE_TASK_TRIAL if c.trial is None else c.trial for c in plan.trained}

    def values(candidate: Candidate, shift: float) -> dict[str, float]:
        study = {m: float(rows.loc[source[candidate.name], f"last_{m}"]) for m in METRIC_KEYS}
        if candidate.single_task is None:
            return {m: value * (1 + shift) for m, value in study.items()}
        better = {m: value * (1.02 if metric(m).higher_is_better else 0.98) for m, value in study.items()}
        return {m: better[m] if metric(m).task == candidate.single_task else math.nan for m in METRIC_KEYS}

    seeds = pd.DataFrame(
        [
            {"config": c.name, "seed": seed, "epochs": int(rows.loc[source[c.name], "epochs"]),
             **values(c, shift * (1 + i))}
            for i, c in enumerate(plan.trained)
            for seed, shift in zip(plan.seeds, (-0.01, 0.0, 0.01), strict=True)
        ]
    )  # fmt: skip
    for name, written in confirmation_tables(plan, seeds).items():
        write_csv(folder.reproduce / name, written)


def write_fake_study(
    root: Path,
    name: str = "fake",
    *,
    trials: Sequence[FakeTrial] | None = None,
    reproduce: bool = True,
    journal: bool = True,
    data: str = "synthetic",
    max_epochs: int = 9,
    per_weighting: int | None = None,
    per_weighting_best: int | None = None,
    single_task: bool = False,
    objectives: Sequence[str] = (),
) -> Path:
    """Write `root/name` as a study results directory with the study's own writers; return its path.
    `per_weighting`: study.json's design says N trials per method (the trials given must be so);
    `per_weighting_best`, `single_task`: the confirmation's (`write_fake_confirmation`). With `objectives`
    a study of several: results.csv's pareto column, study.json's objectives, the journal's directions
    and values, hypervolume.csv, and a confirmation of the front."""
    trials = list(default_trials() if trials is None else trials)
    folder = StudyFolder(root / name)
    ended = []
    for number, trial in enumerate(trials):
        point = {"weighting": trial.weighting, "use_weight_decay": trial.weight_decay > 0}
        if trial.weighting == "dwa":
            point["temperature"] = trial.temperature or 2.0
        if trial.weighting == "scalarization":
            point["depth_share_logit"] = logit(trial.depth_share or 0.5)
        if trial.weight_decay > 0:
            point["weight_decay"] = trial.weight_decay
        point.update(step_fraction=trial.step_fraction, gamma=trial.gamma, lr=trial.lr)
        shape = {"image_height": 128, "image_width": 256, "width": 1.0, "backbone": "segnet"}
        overrides = {**train_overrides(point, max_epochs), "epochs": max_epochs, "seed": number}
        config = config_from_flat({**shape, **overrides}).to_flat()  # what the trial's config.json holds
        history = tuple(trial_metrics(trial)) if trial.state != FAILED else ()
        error = (trial.error or "RuntimeError: failed") if trial.state == FAILED else None
        point[TRIAL_NUMBER] = number
        ended.append(
            EndedTrial(
                number=number,
                trial_id=f"5fa1e_{number:05d}",  # as Ray names its trials
                columns=SPACE.column_values(point, max_epochs),
                config=config,
                history=history,
                error=error,
                point=point,
            )
        )
    summary = {
        "num_samples": len(trials),
        "max_epochs": max_epochs,
        "grace_period": 1,
        "reduction_factor": 3,
        "metric": "score",
        "mode": "max",
        "preset": "tiny",
        "data": data,
        "data_source": data,
        "space": SPACE.describe(),
        "design": {"per_weighting": per_weighting, "weightings": list(SPACE.weightings)},
        **(
            {
                "objectives": list(objectives),
                "directions": ["max" if up else "min" for up in maximised(objectives)],
            }
            if objectives
            else {}
        ),  # fmt: skip
        "settings": {"seed": 0},  # the part of the study's settings a confirmation reads
        "wall_seconds": 754.2,
        "hardware": {"cpus": 2, "gpus": 0, "gpu_name": None},
        "versions": {
            "python": "3.11.7",
            "torch": "2.13.0",
            "ray": "2.60.0",
            "optuna": "5.0.0",
            "mtan": "0.1.0",
        },
    }
    for trial in ended:  # what each trial writes into its own folder while it runs
        atomic_write_json(folder.trial_config_json(trial.number), trial.config)
        folder.write_trial_metrics(trial.number, trial.history)
    table = write_results(
        folder,
        ended,
        metric="score",
        mode="max",
        max_epochs=max_epochs,
        columns=SPACE.columns,
        summary=summary,
        objectives=objectives,
    )
    folder.write_baselines(BASELINES)
    if journal:
        _write_optuna_journal(folder.journal, name, SPACE, ended, list(table["state"]), objectives)
    if objectives:
        completed = [(t.number, [tail_mean(t.history)[k] for k in objectives]) for t in ended
                     if trial_state(t, max_epochs) == COMPLETED]  # fmt: skip
        reference = reference_point(BASELINES, objectives)
        folder.write_hypervolume(hypervolume_history(completed, reference, maximised(objectives)))
    best = folder.read_best_config()
    if reproduce and best is not None:
        write_fake_confirmation(
            folder,
            table,
            per_weighting_best=per_weighting_best,
            single_task=single_task,
            pareto=bool(objectives),
        )
    return folder.path
