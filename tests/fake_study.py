"""Write a small study results directory in the format of docs/results.md, for the analysis tests.

The numbers are deterministic and made up (a trial's quality is a fixed function of its config), but
every file has the documented names, keys and types: results.csv, trials/<id>/metrics.jsonl with
`weight/<task>` (DWA weights computed from the losses by the DWA formula), best_config.json,
study.json, baselines.json, an Optuna journal with completed, pruned and failed trials, and
optionally reproduce/seeds.csv and reproduce/summary.csv.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtan.metrics import HIGHER_IS_BETTER, METRIC_KEYS

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
HIGHER = {m for m, higher in HIGHER_IS_BETTER.items() if higher}


@dataclass(frozen=True)
class FakeTrial:
    """One trial's config and fate."""

    weighting: str
    lr: float
    weight_decay: float
    step_size: int
    gamma: float
    temperature: float | None = None
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
                step_size=10 + 7 * i,
                gamma=0.1 + 0.1 * (i % 8),
                temperature=(0.5 + 1.5 * (i % 5)) if weighting == "dwa" else None,
                epochs=epochs,
                state=state,
                error="RuntimeError: CUDA out of memory" if state == "failed" else "",
            )
        )
    return trials


def _quality(trial: FakeTrial) -> tuple[float, float]:
    """Fixed (segmentation, depth) qualities in (0, 1) from the config."""
    lr_fit = math.exp(-((math.log10(trial.lr) + 4.0) ** 2))
    seg = 0.35 + 0.5 * lr_fit - 0.05 * trial.gamma + (0.05 if trial.weighting == "dwa" else 0.0)
    depth = 0.30 + 0.45 * lr_fit + 0.1 * trial.gamma - 20.0 * trial.weight_decay
    return min(max(seg, 0.05), 0.95), min(max(depth, 0.05), 0.95)


def trial_metrics(trial: FakeTrial) -> list[dict[str, float]]:
    """The per-epoch records of `metrics.jsonl` for one trial."""
    seg_q, depth_q = _quality(trial)
    records, losses = [], {t: [] for t in TASKS}
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
        else:
            weights = {t: 1.0 for t in TASKS}
        record: dict[str, float] = {
            "epoch": epoch,
            "lr": trial.lr * trial.gamma ** (epoch // trial.step_size),
        }
        for t in TASKS:
            record[f"loss/{t}"] = losses[t][-1]
            record[f"weight/{t}"] = weights[t]
        for m in ("miou", "pixel_acc", "miou_2019", "pixel_acc_2019", "miou_2020"):
            bump = 0.0 if m in ("miou", "pixel_acc") else 0.1
            record[m] = BASELINES[m] + (1 - BASELINES[m]) * min(seg + bump * seg, 0.99)
        for m in ("abs_err", "rel_err", "abs_err_batch_mean", "rel_err_batch_mean"):
            record[m] = BASELINES[m] * (1.0 - depth)
        record["score"] = 0.5 * (
            (record["miou"] - BASELINES["miou"]) / (1 - BASELINES["miou"])
            + (BASELINES["abs_err"] - record["abs_err"]) / BASELINES["abs_err"]
        )
        record["seconds"] = 1.5
        records.append(record)
    return records


def _write_optuna_journal(
    path: Path, name: str, ids: Sequence[str], trials: Sequence[FakeTrial], scores: Sequence[Sequence[float]]
) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for trial_id, trial, curve in zip(ids, trials, scores, strict=True):
        params = {
            "weighting": trial.weighting,
            "use_weight_decay": trial.weight_decay > 0,
            "step_size": trial.step_size,
            "gamma": trial.gamma,
            "lr": trial.lr,
        }
        distributions = {
            "weighting": CategoricalDistribution(["equal", "dwa"]),
            "use_weight_decay": CategoricalDistribution([False, True]),
            "step_size": IntDistribution(5, 200),
            "gamma": FloatDistribution(0.1, 0.9),
            "lr": FloatDistribution(1e-5, 1e-3, log=True),
        }
        if trial.weight_decay > 0:  # as the study's space: a flag, then a log-scale value
            params["weight_decay"] = trial.weight_decay
            distributions["weight_decay"] = FloatDistribution(1e-6, 1e-2, log=True)
        if trial.weighting == "dwa":
            params["temperature"] = trial.temperature
            distributions["temperature"] = FloatDistribution(0.5, 10.0, log=True)
        state = {"completed": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED}.get(
            trial.state, TrialState.FAIL
        )
        study.add_trial(
            create_trial(
                state=state,
                value=curve[-1] if state == TrialState.COMPLETE else None,
                params=params,
                distributions=distributions,
                intermediate_values={e + 1: v for e, v in enumerate(curve)},
                user_attrs={"ray_trial_id": trial_id},
            )
        )


def write_fake_study(
    root: Path,
    name: str = "fake",
    *,
    trials: Sequence[FakeTrial] | None = None,
    reproduce: bool = True,
    journal: bool = True,
    data: str = "synthetic",
    max_epochs: int = 9,
) -> Path:
    """Write `root/name` as a study results directory and return its path."""
    trials = list(default_trials() if trials is None else trials)
    out = root / name
    (out / "trials").mkdir(parents=True)
    ids = [f"{i:05d}" for i in range(len(trials))]
    rows, curves = [], []
    for trial_id, trial in zip(ids, trials, strict=True):
        records = trial_metrics(trial) if trial.state != "failed" else []
        curves.append([r["score"] for r in records])
        if trial.state != "failed":
            folder = out / "trials" / trial_id
            folder.mkdir()
            (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        row: dict[str, object] = {
            "trial_id": trial_id,
            "state": trial.state,
            "epochs": trial.epochs,
            "error": trial.error,
            "weighting": trial.weighting,
            "temperature": "" if trial.temperature is None else trial.temperature,
            "weight_decay": trial.weight_decay,
            "step_size": trial.step_size,
            "gamma": trial.gamma,
            "lr": trial.lr,
        }
        for m in METRIC_KEYS:
            values = [r[m] for r in records]
            row[f"last_{m}"] = values[-1] if values else ""
            row[f"best_{m}"] = (max(values) if m in HIGHER else min(values)) if values else ""
        rows.append(row)
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    finished = [(row, t) for row, t in zip(rows, trials, strict=True) if t.state != "failed"]
    if finished:
        row, trial = max(finished, key=lambda pair: pair[0]["last_score"])
        config = {k: row[k] for k in ("weighting", "temperature", "weight_decay", "step_size", "gamma", "lr")}
        config.update(
            {
                "epochs": max_epochs,
                "image_height": 128,
                "image_width": 256,
                "width": 1.0,
                "backbone": "segnet",
                "seed": 0,
            }
        )
        best = {
            "trial_id": row["trial_id"],
            "metric": "score",
            "mode": "max",
            "value": row["last_score"],
            "config": config,
            "metrics": {m: row[f"last_{m}"] for m in METRIC_KEYS},
        }
        (out / "best_config.json").write_text(json.dumps(best, indent=2))

    states: dict[str, int] = {}
    for t in trials:
        states[t.state] = states.get(t.state, 0) + 1
    study = {
        "num_samples": len(trials),
        "max_epochs": max_epochs,
        "grace_period": 1,
        "reduction_factor": 3,
        "metric": "score",
        "mode": "max",
        "preset": "tiny",
        "data": data,
        "wall_seconds": 754.2,
        "states": states,
        "epochs_trained": sum(t.epochs for t in trials),
        "epochs_budget": len(trials) * max_epochs,
        "hardware": {"cpus": 2, "gpus": 0, "gpu_name": None},
        "versions": {
            "python": "3.11.7",
            "torch": "2.13.0",
            "ray": "2.60.0",
            "optuna": "5.0.0",
            "mtan": "0.1.0",
        },
    }
    (out / "study.json").write_text(json.dumps(study, indent=2))
    (out / "baselines.json").write_text(json.dumps(BASELINES, indent=2))
    if journal:
        _write_optuna_journal(out / "optuna.journal", name, ids, trials, curves)
    if reproduce and finished:
        (out / "reproduce").mkdir()
        seeds = []
        for seed, shift in enumerate((-0.01, 0.0, 0.01)):
            best_metrics = best["metrics"]
            seeds.append({"seed": seed, **{m: float(best_metrics[m]) * (1 + shift) for m in METRIC_KEYS}})
        with (out / "reproduce" / "seeds.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(seeds[0]))
            writer.writeheader()
            writer.writerows(seeds)
        with (out / "reproduce" / "summary.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["metric", "mean", "std", "n"])
            for m in METRIC_KEYS:
                values = [s[m] for s in seeds]
                mean = sum(values) / len(values)
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                writer.writerow([m, mean, std, len(values)])
    return out
