"""What `study.reproduce` prints while it runs (`study.reproduce.progress`), against planted run folders
that grow epoch by epoch as `mtan.train` writes them; the poller is driven by hand, and the ETAs are
worked out from the planted epoch times."""

from __future__ import annotations

import io
import math
from pathlib import Path

from rich.console import Console

from mtan.run_folder import CHECKPOINT_FILE, write_metrics
from study.record import StudyFolder
from study.reproduce.plan import Candidate, ConfirmationPlan
from study.reproduce.progress import (
    ConfirmationProgress,
    SeedRun,
    plan_text,
    run_status,
    seed_runs,
    shown_metric,
)


def row(epoch: int, score: float, seconds: float) -> dict[str, float]:
    return {"epoch": epoch, "score": score, "seconds": seconds}


def plain(runs: list[SeedRun], at_once: int | None = 2) -> tuple[ConfirmationProgress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    return ConfirmationProgress(runs, "score", at_once, console, live=False), out


def new_lines(out: io.StringIO, seen: list[str]) -> list[str]:
    lines = out.getvalue().splitlines()
    fresh = lines[len(seen) :]
    seen.extend(fresh)
    return fresh


def test_a_line_per_run_and_epoch_with_the_eta(tmp_path: Path):
    a = SeedRun("trial_004", 6, tmp_path / "trial_004" / "seed_6", 3)
    b = SeedRun("paper", 6, tmp_path / "paper" / "seed_6", 3)
    progress, out = plain([a, b])
    seen: list[str] = []
    progress.start("the plan")
    assert new_lines(out, seen) == ["the plan"]
    progress.poll()  # nothing on disk yet (the tasks are starting)
    assert new_lines(out, seen) == []

    history_a = [row(1, 0.25, 10.0)]
    write_metrics(a.folder, history_a)
    progress.poll()
    # epoch times seen: 10 s; epochs left: 2 + 3 = 5; two runs at once: 10 * 5 / 2 = 25 s
    assert new_lines(out, seen) == ["trial_004 seed 6  epoch 1/3  score 0.250  (1 of 6 epochs, ETA 25 s)"]
    progress.poll()  # the same file again: nothing new
    assert new_lines(out, seen) == []

    history_a.append(row(2, 0.30, 20.0))
    write_metrics(a.folder, history_a)
    write_metrics(b.folder, [row(1, 0.10, 30.0)])
    progress.poll()
    assert new_lines(out, seen) == [
        # times 10, 20: mean 15 s; left 1 + 3 = 4; 15 * 4 / 2 = 30 s
        "trial_004 seed 6  epoch 2/3  score 0.300  (2 of 6 epochs, ETA 30 s)",
        # times 10, 20, 30: mean 20 s; left 1 + 2 = 3; 20 * 3 / 2 = 30 s
        "paper seed 6  epoch 1/3  score 0.100  (3 of 6 epochs, ETA 30 s)",
    ]

    history_a.append(row(3, 0.35, 40.0))
    write_metrics(a.folder, history_a)
    progress.poll()
    # times 10..40: mean 25 s; left 0 + 2 = 2; 25 * 2 / 2 = 25 s
    assert new_lines(out, seen) == ["trial_004 seed 6  epoch 3/3  score 0.350  (4 of 6 epochs, ETA 25 s)"]
    progress.ended(a, history_a)
    assert new_lines(out, seen) == [
        "trial_004 seed 6  done: 3/3 epochs, score 0.300 (mean of the last 3)  [1 of 2 runs ended]"
    ]
    assert progress.eta_seconds() == 50.0  # one run left, alone: 25 s * 2 epochs


def test_the_runs_already_in_the_folder(tmp_path: Path):
    new = SeedRun("trial_002", 8, tmp_path / "trial_002" / "seed_8", 3)
    continued = SeedRun("trial_002", 9, tmp_path / "trial_002" / "seed_9", 3)
    kept = SeedRun("paper", 8, tmp_path / "paper" / "seed_8", 3)
    write_metrics(continued.folder, [row(1, 0.2, 5.0)])
    (continued.folder / CHECKPOINT_FILE).write_bytes(b"")
    kept_history = [row(1, 0.1, 5.0), row(2, 0.2, 5.0), row(3, 0.3, 5.0)]
    write_metrics(kept.folder, kept_history)
    (kept.folder / CHECKPOINT_FILE).write_bytes(b"")
    assert run_status(new) == "new"
    assert run_status(continued) == "continues from its checkpoint (1/3 epochs on disk)"
    assert run_status(kept) == "done (3/3 epochs), kept"

    progress, out = plain([new, continued, kept], at_once=None)
    seen: list[str] = []
    progress.start("the plan")
    progress.poll()  # the epochs on disk before the start are not new
    assert new_lines(out, seen) == ["the plan"]
    assert progress.eta_seconds() is None  # no epoch trained yet
    progress.ended(kept, kept_history)
    assert new_lines(out, seen) == [
        "paper seed 8  kept (trained before): 3/3 epochs, score 0.200 (mean of the last 3)  "
        "[1 of 3 runs ended]"
    ]
    write_metrics(continued.folder, [row(1, 0.2, 5.0), row(2, 0.4, 8.0)])
    progress.poll()
    # only the epoch trained since the start counts: 8 s; left 3 + 1 = 4 over both unfinished runs: 16 s
    assert new_lines(out, seen) == ["trial_002 seed 9  epoch 2/3  score 0.400  (5 of 9 epochs, ETA 16 s)"]


def test_a_run_trained_again_from_the_start_shows_no_progress_until_its_first_new_epoch(tmp_path: Path):
    again = SeedRun("trial_002", 8, tmp_path / "trial_002" / "seed_8", 3)
    write_metrics(again.folder, [row(1, 0.2, 5.0), row(2, 0.4, 5.0)])  # stopped before its first checkpoint
    progress, out = plain([again], at_once=None)
    seen: list[str] = []
    progress.start("the plan")
    progress.poll()  # its two old epochs are trained again: not progress, not in the totals
    assert new_lines(out, seen) == ["the plan"]
    assert "0 of 3 epochs" in progress._totals_text()
    write_metrics(again.folder, [row(1, 0.3, 7.0)])  # its first epoch trained again rewrites the file
    progress.poll()
    # 7 s an epoch, 2 epochs left: 14 s
    assert new_lines(out, seen) == ["trial_002 seed 8  epoch 1/3  score 0.300  (1 of 3 epochs, ETA 14 s)"]


def test_the_live_table(tmp_path: Path):
    a = SeedRun("trial_004", 6, tmp_path / "a", 3)
    b = SeedRun("paper", 6, tmp_path / "b", 3)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    now = [100.0]
    progress = ConfirmationProgress([a, b], "score", 1, console, clock=lambda: now[0])
    assert progress.live  # a terminal
    progress.start("the plan")
    write_metrics(a.folder, [row(1, 0.25, 10.0), row(2, 0.5, 20.0)])
    now[0] = 160.0
    progress.poll()
    progress.stop()
    assert "epoch 2/3" not in out.getvalue()  # no plain lines in a terminal
    assert "trial_004" in out.getvalue()  # but the table, drawn on the terminal
    table = progress.table()
    # the whole ETA: mean 15 s * (1 + 3) epochs left, one run at once = 60 s; the run's own 15 * 1 = 15 s
    assert table.title == "0 of 2 runs ended, 2 of 6 epochs, ETA 60 s, 60 s elapsed"
    text = io.StringIO()
    Console(file=text, width=120).print(table)
    cells = [
        [c.strip() for c in line.split("│")[1:-1]] for line in text.getvalue().splitlines() if "│" in line
    ]
    assert cells == [  # config, seed, epoch, score, ETA
        ["trial_004", "6", "2/3", "0.500", "15 s"],
        ["paper", "6", "0/3", "-", "-"],
    ]


def test_the_plan_names_configurations_seeds_runs_and_comparisons(tmp_path: Path):
    equal = {
        "weighting": "equal",
        "temperature": 2.0,
        "weight_decay": 0.0,
        "step_size": 2,
        "gamma": 0.5,
        "epochs": 3,
    }
    dwa = {**equal, "weighting": "dwa", "weight_decay": 1e-4, "step_size": 1}
    plan = ConfirmationPlan(
        metric="score",
        mode="max",
        candidates=(
            Candidate("paper", 0, "", ("best 1 of equal", "paper"), "equal", math.nan, math.nan, "", equal),
            Candidate("trial_004", 4, "", ("best 1 of dwa",), "dwa", math.nan, math.nan, "", dwa),
        ),
        seeds=(6, 7),
        pairs=(("best dwa (trial_004) vs best equal (paper)", "trial_004", "paper"),),
        notes=("uncertainty: no completed trial in the study, so none of its configurations is retrained",),
        single_task=(
            Candidate(
                "stl_segmentation",
                0,
                "",
                ("stl segmentation",),
                "equal",
                math.nan,
                math.nan,
                "",
                {**equal, "single_task": "segmentation"},
            ),
        ),
    )
    folder = StudyFolder(tmp_path)
    runs = seed_runs(plan, folder)
    assert [(r.label, r.folder, r.epochs, r.single_task) for r in runs] == [
        (f"{c} seed {s}", tmp_path / "reproduce" / c / f"seed_{s}", 3, task)
        for c, task in (("paper", None), ("trial_004", None), ("stl_segmentation", "segmentation"))
        for s in (6, 7)
    ]
    write_metrics(runs[1].folder, [row(1, 0.2, 5.0)])
    (runs[1].folder / CHECKPOINT_FILE).write_bytes(b"")
    write_metrics(runs[4].folder, [row(1, 0.2, 5.0)])  # stopped before its first checkpoint
    assert plan_text(plan, folder).splitlines() == [
        "confirmation: 2 configurations and 1 single-task baseline x 2 seeds (6, 7) = 6 runs of 3 epochs; "
        "each counts with its mean of the last 10 epochs of score (max)",
        f"runs in {tmp_path / 'reproduce'}",
        "  paper             equal wd=0 step=2 gamma=0.5  (best 1 of equal; paper)",  # no DWA temperature
        "  trial_004         dwa T=2 wd=0.0001 step=1 gamma=0.5  (best 1 of dwa)",
        "single-task baselines (the paper's One Task network in the paper's configuration; Delta_m of each "
        "configuration against them on the same seed):",
        "  stl_segmentation  segmentation alone, wd=0 step=2 gamma=0.5  (stl segmentation)",
        "uncertainty: no completed trial in the study, so none of its configurations is retrained",
        "runs: 4 new, 2 already in the folder",
        "  paper seed 7: continues from its checkpoint (1/3 epochs on disk)",
        "  stl_segmentation seed 6: trained again from the start (1/3 epochs on disk, no checkpoint)",
        "comparisons (paired t-tests over the seeds; Holm's adjustment over the 1 comparison of each metric; "
        "significant: Holm p < 0.05):",
        "  best dwa (trial_004) vs best equal (paper)",
    ]


def test_a_single_task_run_shows_its_own_tasks_metric(tmp_path: Path):
    assert [shown_metric("score", task) for task in (None, "segmentation", "depth")] == [
        "score",
        "miou",
        "abs_err",
    ]
    assert shown_metric("pixel_acc", "segmentation") == "pixel_acc"  # the study's, where the run has it
    assert shown_metric("pixel_acc", "depth") == "abs_err"
    stl = SeedRun("stl_depth", 6, tmp_path / "stl_depth" / "seed_6", 2, "depth")
    paper = SeedRun("paper", 6, tmp_path / "paper" / "seed_6", 2)
    progress, out = plain([stl, paper])
    progress.start("the plan")
    write_metrics(stl.folder, [{"epoch": 1, "abs_err": 0.05, "seconds": 10.0}])
    progress.poll()
    assert (
        out.getvalue().splitlines()[-1]
        == "stl_depth seed 6  epoch 1/2  abs_err 0.050  (1 of 4 epochs, ETA 15 s)"
    )
    cells = [list(column.cells) for column in progress.table().columns]
    assert [column[0] for column in cells] == ["stl_depth", "6", "1/2", "abs_err 0.050", "10 s"]
    progress.ended(stl, [{"epoch": 1, "abs_err": 0.05}, {"epoch": 2, "abs_err": 0.03}])
    assert "stl_depth seed 6  done: 2/2 epochs, abs_err 0.040 (mean of the last 2)" in out.getvalue()
