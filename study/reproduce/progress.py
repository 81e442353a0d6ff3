"""What a running confirmation prints: its plan, then the progress of its runs, read from their folders.

The runs are Ray tasks, not Tune trials, so nothing reports to the driver while they train. Each run
rewrites its ``metrics.jsonl`` atomically after every epoch (`mtan.train`), so the driver follows them
by reading those files between two `ray.wait`s (`ConfirmationProgress.poll`). In a terminal it keeps a
table of the runs (`rich`, as the study's `study.observe.progress` does for trials); otherwise it prints
a line per run and epoch, ``paper seed 6  epoch 2/24  score 0.410  (9 of 96 epochs, ETA 12 min)``.
Each run that ends gets a line with its value, the mean of its last 10 epochs (the paper's protocol). A
single-task run, which has no score, shows its own task's metric instead of the study's (`shown_metric`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from mtan.metrics import DELTA_M_KEYS, TAIL_EPOCHS, metric, tail_mean
from mtan.run_folder import CHECKPOINT_FILE, METRICS_FILE, read_metrics
from mtan.weighting import WEIGHTINGS, hyperparameters
from study.observe.progress import REFRESH_SECONDS, config_text, duration_text
from study.record import StudyFolder
from study.reproduce.plan import Candidate, ConfirmationPlan
from study.reproduce.stats import family_note

# How long the driver waits on its Ray tasks between two reads of the run folders.
POLL_SECONDS = REFRESH_SECONDS


def shown_metric(study_metric: str, single_task: str | None) -> str:
    """The metric a run's lines show: the study's, or for a single-task run whose task it does not
    measure, the first metric of that task in Delta_m (`miou`, `abs_err`)."""
    if single_task is None or metric(study_metric).task == single_task:
        return study_metric
    return next(key for key in DELTA_M_KEYS if metric(key).task == single_task)


@dataclass(frozen=True)
class SeedRun:
    """One run of a confirmation: a candidate configuration or single-task baseline (by name) on a seed,
    in its folder."""

    config: str
    seed: int
    folder: Path
    epochs: int  # the run's budget
    single_task: str | None = None  # the task of a single-task baseline

    @property
    def label(self) -> str:
        """`paper seed 6`."""
        return f"{self.config} seed {self.seed}"


def seed_runs(plan: ConfirmationPlan, folder: StudyFolder) -> list[SeedRun]:
    """Every run of `plan`, candidate by candidate then the single-task baselines, seed by seed, in its
    folder of the study's reproduce/."""
    return [
        SeedRun(c.name, seed, folder.seed_run(c.name, seed), int(c.config["epochs"]), c.single_task)
        for c in plan.trained
        for seed in plan.seeds
    ]


def run_status(run: SeedRun) -> str:
    """What the folder holds before the confirmation starts: nothing (`new`), a run stopped before its
    first checkpoint that it trains again from the start, a run it continues from its checkpoint, or a
    finished run it keeps."""
    epochs = len(read_metrics(run.folder))
    if not (run.folder / CHECKPOINT_FILE).exists():
        on_disk = f"{epochs}/{run.epochs} epochs on disk, no checkpoint"
        return f"trained again from the start ({on_disk})" if epochs else "new"
    if epochs >= run.epochs:
        return f"done ({epochs}/{run.epochs} epochs), kept"
    return f"continues from its checkpoint ({epochs}/{run.epochs} epochs on disk)"


def method_config_text(config: Mapping[str, Any]) -> str:
    """A candidate's configuration in short names, without the hyperparameters of other weighting
    methods (every flat config has a temperature; only a DWA run uses it); a single-task baseline's says
    its task instead of its weighting."""
    own = {h.name for h in WEIGHTINGS[str(config["weighting"])].hyperparameters}
    others = set(hyperparameters()) - own
    text = config_text({k: v for k, v in config.items() if k not in others})
    if config.get("single_task") is not None:
        return f"{config['single_task']} alone, " + text.removeprefix(f"{config['weighting']} ")
    return text


def candidate_line(candidate: Candidate, width: int) -> str:
    """`  trial_004  dwa T=2 wd=0 step=12 gamma=0.5  (best 1 of dwa)`."""
    return (
        f"  {candidate.name:<{width}}  {method_config_text(candidate.config)}  ({'; '.join(candidate.roles)})"
    )


def plan_text(plan: ConfirmationPlan, folder: StudyFolder) -> str:
    """The plan, before Ray starts: what is trained on which seeds and where, each candidate with its
    configuration and why it is retrained, the single-task baselines of Delta_m, the methods left out, the
    runs already in the folder, and the comparisons."""
    runs = seed_runs(plan, folder)
    width = max(len(c.name) for c in plan.trained)
    seeds = ", ".join(map(str, plan.seeds))
    count = len(plan.single_task)
    baselines = f" and {count} single-task baseline{'s' if count != 1 else ''}" if count else ""
    lines = [
        f"confirmation: {len(plan.candidates)} configurations{baselines} x {len(plan.seeds)} seeds ({seeds}) "
        f"= {len(runs)} runs of {runs[0].epochs} epochs; each counts with its mean of the last "
        f"{TAIL_EPOCHS} epochs of {plan.metric} ({plan.mode})",
        f"runs in {folder.reproduce}",
    ]
    lines += [candidate_line(candidate, width) for candidate in plan.candidates]
    if plan.single_task:
        lines.append(
            "single-task baselines (the paper's One Task network in the paper's configuration; Delta_m of "
            "each configuration against them on the same seed):"
        )
        lines += [candidate_line(candidate, width) for candidate in plan.single_task]
    lines += list(plan.notes)
    statuses = {run: run_status(run) for run in runs}
    new = sum(status == "new" for status in statuses.values())
    lines.append(f"runs: {new} new, {len(runs) - new} already in the folder")
    lines += [f"  {run.label}: {status}" for run, status in statuses.items() if status != "new"]
    if plan.pairs:
        lines.append(f"comparisons ({family_note(len(plan.pairs))}):")
        lines += [f"  {name}" for name, _, _ in plan.pairs]
    return "\n".join(lines)


@dataclass
class _RunState:
    run: SeedRun
    start_epoch: int  # epochs it keeps from before the confirmation started (0 without a checkpoint)
    epoch: int  # the newest epoch seen
    value: float | None = None
    seconds: list[float] = field(default_factory=list)  # epoch times seen since the start
    ended: bool = False
    # a run stopped before its first checkpoint: its metrics.jsonl's stamp at the start. Those rows are
    # trained again, so they are no progress; the run's first epoch rewrites the file.
    stale: tuple[int, int, int] | None = None


@dataclass
class ConfirmationProgress:
    """The plan, then each run's progress: a live table in a terminal, plain lines otherwise.

    `start` prints its first line (e.g. how many runs train at once) and notes what each folder
    already holds; the driver then calls `poll`
    between its waits and `ended` when a run's task returns; `stop` leaves the final table. `clock`
    (seconds) measures the time elapsed shown in the table; `live` forces the table on or off (default:
    on when `console` is a terminal).
    """

    runs: Sequence[SeedRun]
    metric: str
    at_once: int | None = None  # how many runs train at once (None: all)
    console: Console = field(default_factory=Console)
    live: bool | None = None
    clock: Callable[[], float] = time.monotonic
    _states: dict[SeedRun, _RunState] = field(default_factory=dict, init=False)
    _start: float = field(default=math.nan, init=False)
    _display: Live | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = self.console.is_terminal

    def start(self, text: str) -> None:
        """Print `text`, note each run's epochs already on disk, start the clock and the live table."""
        self._print(text)
        for run in self.runs:
            epochs = max((int(row["epoch"]) for row in read_metrics(run.folder)), default=0)
            checkpoint = (run.folder / CHECKPOINT_FILE).exists()
            kept = epochs if checkpoint else 0
            stale = _stamp(run.folder) if epochs and not checkpoint else None
            self._states[run] = _RunState(run, start_epoch=kept, epoch=kept, stale=stale)
        self._start = self.clock()
        if self.live:
            self._display = Live(self.table(), console=self.console, auto_refresh=False)
            self._display.start()

    def poll(self) -> None:
        """Read the folders of the runs not ended: a line per new epoch (or the table redrawn)."""
        for state in self._states.values():
            if state.ended:
                continue
            if state.stale is not None:
                if _stamp(state.run.folder) == state.stale:
                    continue  # the rows of before the start, not trained again yet
                state.stale = None
            for row in read_metrics(state.run.folder):
                if int(row["epoch"]) <= state.epoch:
                    continue  # seen
                state.epoch = int(row["epoch"])
                shown = shown_metric(self.metric, state.run.single_task)
                value = row.get(shown)
                state.value = float(value) if isinstance(value, (int, float)) else None
                state.seconds.append(float(row.get("seconds", math.nan)))
                if not self.live:
                    self._print(
                        f"{state.run.label}  epoch {state.epoch}/{state.run.epochs}  "
                        f"{shown} {_number(state.value)}  ({self._totals_text()})"
                    )
        self._refresh()

    def ended(self, run: SeedRun, history: Sequence[dict[str, float]]) -> None:
        """A run's task returned its metrics rows: a line with its epochs and its value."""
        state = self._states[run]
        state.ended = True
        state.epoch = len(history)
        how = "kept (trained before)" if state.start_epoch >= run.epochs else "done"
        shown = shown_metric(self.metric, run.single_task)
        value = tail_mean(history).get(shown)
        tail = min(TAIL_EPOCHS, len(history))
        done = sum(s.ended for s in self._states.values())
        self._print(
            f"{run.label}  {how}: {len(history)}/{run.epochs} epochs, {shown} {_number(value)} "
            f"(mean of the last {tail})  [{done} of {len(self.runs)} runs ended]"
        )
        self._refresh()

    def stop(self) -> None:
        """Leave the final table on screen and stop redrawing."""
        if self._display is not None:
            self._display.update(self.table(), refresh=True)
            self._display.stop()
            self._display = None

    def eta_seconds(self) -> float | None:
        """The time left: the epochs left times the mean epoch time seen since the start, over the runs
        that train at once (`at_once`, at most the runs not ended); None before the first epoch. The
        epoch times are the runs' own (``seconds`` in metrics.jsonl), so Ray's and the data's start-up
        does not inflate it."""
        seconds = [t for s in self._states.values() for t in s.seconds if not math.isnan(t)]
        if not seconds:
            return None
        unfinished = [s for s in self._states.values() if not s.ended]
        if not unfinished:
            return 0.0
        left = sum(max(0, s.run.epochs - s.epoch) for s in unfinished)
        at_once = min(self.at_once or len(unfinished), len(unfinished))
        return sum(seconds) / len(seconds) * left / at_once

    def table(self) -> Table:
        """Every run: configuration, seed, epoch of its budget, latest value (of its own metric, named, for
        a single-task run that lacks the study's), its own ETA or `done`."""
        done = sum(s.ended for s in self._states.values())
        elapsed = duration_text(self.clock() - self._start)
        title = f"{done} of {len(self.runs)} runs ended, {self._totals_text()}, {elapsed} elapsed"
        table = Table(title=title, title_justify="left", min_width=len(title))  # the title on one line
        for name, justify in (("config", "left"), ("seed", "right"), ("epoch", "right")):
            table.add_column(name, justify=justify)
        table.add_column(self.metric, justify="right")
        table.add_column("ETA", justify="right")
        for state in self._states.values():
            table.add_row(
                state.run.config,
                str(state.run.seed),
                f"{state.epoch}/{state.run.epochs}",
                self._value_text(state),
                "done" if state.ended else self._run_eta(state),
            )
        return table

    # ---------------------------------------------------------------- helpers

    def _totals_text(self) -> str:
        epochs = sum(s.epoch for s in self._states.values())
        total = sum(run.epochs for run in self.runs)
        eta = self.eta_seconds()
        return f"{epochs} of {total} epochs, ETA {'-' if eta is None else duration_text(eta)}"

    def _value_text(self, state: _RunState) -> str:
        shown = shown_metric(self.metric, state.run.single_task)
        return _number(state.value) if shown == self.metric else f"{shown} {_number(state.value)}"

    def _run_eta(self, state: _RunState) -> str:
        """The run's epochs left at its mean epoch time so far (`-` before its first epoch)."""
        if not state.seconds:
            return "-"
        mean = sum(state.seconds) / len(state.seconds)
        return duration_text(mean * (state.run.epochs - state.epoch))

    def _refresh(self) -> None:
        if self._display is not None:
            self._display.update(self.table(), refresh=True)

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def _stamp(folder: Path) -> tuple[int, int, int]:
    """The inode, modification time and size of a run folder's metrics.jsonl: whether it was written
    since (each write replaces the file)."""
    status = (folder / METRICS_FILE).stat()
    return status.st_ino, status.st_mtime_ns, status.st_size


def _number(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"
