"""What a running study shows: a header, then live progress of its trials (Tune's own tables are off).

`StudyProgress` is a Tune `Callback`. In a terminal it keeps a status table of the running trials
(trial number, configuration in short names, epoch of the budget, latest objective, ETA) refreshed
every `REFRESH_SECONDS`, drawn with `rich`; otherwise (output piped or logged) it prints one plain line
per trial per epoch, ``trial 3  epoch 2/24  score 0.410``. In both, a trial that starts or ends gets a
line: its configuration, or how it ended (completed, stopped early by ASHA, failed and why); a trial
restarted (its worker lost, or continued by a later driver run) gets one line with how many times and why.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table

from study.space import DIMENSIONS, TRIAL_NUMBER, WEIGHTING, sigmoid

REFRESH_SECONDS = 2.0
# A searched value's short name in trial lines and the table; keys not listed (e.g. trial_number,
# use_weight_decay) are not shown, nor a value a trial does not have (an equal trial's temperature).
SHORT_NAMES: dict[str, str] = {
    "temperature": "T",
    "depth_share": "w",
    "weight_decay": "wd",
    "step_fraction": "step",
    "step_size": "step",
    "gamma": "gamma",
    "lr": "lr",
}
# A value searched on the logit scale is in a trial's point as its logit (Optuna's parameter), by field.
LOGIT_PARAMETERS: dict[str, str] = {d.field: d.name for d in DIMENSIONS if d.scale == "logit" and d.field}


@dataclass(frozen=True)
class StudyHeader:
    """The facts a study prints before its first trial."""

    preset: str
    data: str
    image_size: str  # HxW, e.g. 32x64
    num_samples: int
    max_epochs: int
    grace_period: int
    metric: str
    mode: str  # max or min
    trials_at_once: str  # e.g. "2 (1 CPU each)" or "as many as fit"
    results: str  # where the study's files go
    hints: tuple[str, ...] = ()  # how to open the study's dashboards, a line each
    objectives: str = ""  # a study of several objectives: them and their directions, e.g. "miou (max), ..."

    def text(self) -> str:
        """Three lines: what is trained on what, the budget, where it runs and writes; then the hints."""
        judged = f"objective {self.metric} ({self.mode})"
        if self.objectives:
            judged = (
                f"objectives {self.objectives} (their Pareto front; means of the last 10 epochs); ASHA "
                f"stops on {self.metric} ({self.mode})"
            )
        return "\n".join(
            (
                f"MTAN study: {self.preset} preset, data {self.data}, images {self.image_size}",
                f"budget: {self.num_samples} trials x up to {self.max_epochs} epochs; ASHA may stop a trial "
                f"after {self.grace_period}; {judged}",
                f"trials at once: {self.trials_at_once}; results in {self.results}",
                *self.hints,
            )
        )


def config_text(config: Mapping[str, Any]) -> str:
    """A trial's point in short names: `dwa T=2 wd=1e-04 step=0.25 gamma=0.5` (`wd=0` when weight decay
    is off; a value searched on the logit scale as the value, `w=0.3`, not its logit); internal keys and
    values the trial does not have are left out."""
    parts = [str(config[WEIGHTING])] if WEIGHTING in config else []
    for key, short in SHORT_NAMES.items():
        value = 0 if key == "weight_decay" and config.get("use_weight_decay") is False else config.get(key)
        if value is None and isinstance(config.get(LOGIT_PARAMETERS.get(key, "")), (int, float)):
            value = sigmoid(float(config[LOGIT_PARAMETERS[key]]))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        parts.append(f"{short}={value:.2g}" if isinstance(value, float) else f"{short}={value}")
    return " ".join(parts)


def default_trial_number(trial: Any) -> int | str:
    """Optuna's number of the trial, carried in its config; Ray's trial id when it has none."""
    return (trial.config or {}).get(TRIAL_NUMBER, trial.trial_id)


NO_ERROR = "no error recorded"
# Ray's error file of a trial appends each failure under a header (`ray.tune.experiment.Trial.handle_error`).
FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.MULTILINE)
# A lost worker or node: Ray's ActorDiedError, whose text holds one sentence why among many lines.
ACTOR_DEAD = re.compile(r"The actor is dead because ([^.]*)\.")
# A node lost while a call was under way: Ray's ActorUnavailableError, one line naming the actor by its id.
ACTOR_UNAVAILABLE = re.compile(r"^The actor \w+ is unavailable: (.*)$")
EXIT_TYPE = re.compile(r"Worker exit type: (\w+)")


def failure_line(text: str) -> str:
    """One line saying why the latest failure in the text of a trial's error file happened: the
    exception's last line with its module path dropped, or for a lost actor Ray's sentence why it is
    dead (and the worker's exit type) or unavailable, named by the exception's type."""
    latest = FAILURE_HEADER.split(text)[-1]
    lines = [line.strip() for line in latest.splitlines() if line.strip()]
    if not lines:
        return NO_ERROR
    dead = ACTOR_DEAD.search(latest)
    if dead:
        exit_type = EXIT_TYPE.search(latest)
        return f"ActorDiedError: the actor is dead because {dead.group(1)}" + (
            f" (worker exit type {exit_type.group(1)})" if exit_type else ""
        )
    unavailable = ACTOR_UNAVAILABLE.match(lines[-1])
    if unavailable:
        return f"ActorUnavailableError: {unavailable.group(1)}"
    return re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", lines[-1])


def error_line(trial: Any) -> str:
    """Why a Tune trial's latest attempt failed, in one line (`failure_line` of Ray's error file)."""
    path = getattr(trial, "error_file", None)
    if not path or not Path(path).is_file():
        return NO_ERROR
    return failure_line(Path(path).read_text(errors="replace"))


def duration_text(seconds: float) -> str:
    """`45 s`, `12 min`, `3.5 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass
class _TrialState:
    number: int | str
    config: str
    epoch: int = 0
    value: float | None = None
    seconds: float = 0.0  # the trainable's time at its latest report
    running: bool = True


@dataclass
class StudyProgress(Callback):
    """The header at the start, then per-trial progress: a live table in a terminal, plain lines otherwise.

    `trial_number` maps a Tune trial to the number shown (by default Optuna's, from its config);
    `console` is where it all goes (stdout by default); `live` forces the table on or off (default: on
    when the console is a terminal).
    """

    header: StudyHeader
    trial_number: Callable[[Any], int | str] = default_trial_number
    restarts: Callable[[Any], tuple[int, str]] | None = None  # a trial's restarts so far and the last why
    ended_before: int = 0  # trials that ended in the study's earlier runs (a resumed study)
    console: Console = field(default_factory=Console)
    live: bool | None = None
    _trials: dict[str, _TrialState] = field(default_factory=dict, init=False)
    _ended: int = field(default=0, init=False)
    _start: float = field(default_factory=time.monotonic, init=False)
    _last_refresh: float = field(default=-math.inf, init=False)
    _display: Live | None = field(default=None, init=False)
    _restarts_shown: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = self.console.is_terminal
        self._ended = self.ended_before

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment's state: the console and live display (locks,
        open files) stay behind, and an unpickled copy writes to stdout."""
        return {**self.__dict__, "console": None, "_display": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, console=Console())

    # ---------------------------------------------------------------- Tune's hooks

    def setup(self, **info: Any) -> None:
        """The study starts: print the header, and start the live table in a terminal."""
        self._print(self.header.text())
        if self.live:
            self._display = Live(self.table(), console=self.console, auto_refresh=False)
            self._display.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = self._state(trial)
        state.running = True
        self._print(f"trial {state.number}  started  {state.config}{self._new_restart(trial, '  (', ')')}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        state = self._state(trial)
        state.epoch = int(result.get("epoch", state.epoch))
        value = result.get(self.header.metric)
        state.value = float(value) if isinstance(value, (int, float)) else None
        state.seconds = float(result.get("time_total_s", state.seconds))
        if not self.live:
            epochs = f"{state.epoch}/{self.header.max_epochs}"
            self._print(f"trial {state.number}  epoch {epochs}  {self._value_text(state)}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial ended without error: completed its budget or stopped early by ASHA."""
        state = self._state(trial)
        how = "completed" if state.epoch >= self.header.max_epochs else "stopped early by ASHA"
        self._end(
            state, f"{how} after {state.epoch}/{self.header.max_epochs} epochs  {self._value_text(state)}"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed for good (no retry left)."""
        state = self._state(trial)
        self._end(state, f"FAILED after {state.epoch}/{self.header.max_epochs} epochs: {error_line(trial)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed and is retried from its last checkpoint."""
        state = self._state(trial)
        said = self._new_restart(trial, "", "") or f"failed: {error_line(trial)}"
        self._print(f"trial {state.number}  {said}; again from its last checkpoint (the start if none)")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Redraw the live table every `REFRESH_SECONDS`."""
        now = time.monotonic()
        if self._display is not None and now - self._last_refresh >= REFRESH_SECONDS:
            self._last_refresh = now
            self._display.update(self.table(), refresh=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Leave the final table on screen and stop redrawing."""
        if self._display is not None:
            self._display.update(self.table(), refresh=True)
            self._display.stop()
            self._display = None

    # ---------------------------------------------------------------- the table

    def table(self) -> Table:
        """The running trials: number, configuration, epoch of the budget, latest objective, ETA."""
        running = [s for s in self._trials.values() if s.running]
        elapsed = duration_text(time.monotonic() - self._start)
        counts = f"{len(running)} running, {self._ended} of {self.header.num_samples} ended"
        title = f"{counts}, {elapsed} elapsed"
        table = Table(title=title, title_justify="left", min_width=len(title))  # the title on one line
        for name, justify in (("trial", "right"), ("config", "left"), ("epoch", "right")):
            table.add_column(name, justify=justify)
        table.add_column(self.header.metric, justify="right")
        table.add_column("ETA", justify="right")
        for state in sorted(running, key=lambda s: (isinstance(s.number, str), s.number)):
            table.add_row(
                str(state.number),
                state.config,
                f"{state.epoch}/{self.header.max_epochs}",
                "-" if state.value is None else f"{state.value:.3f}",
                self._eta(state),
            )
        return table

    # ---------------------------------------------------------------- helpers

    def _state(self, trial: Any) -> _TrialState:
        if trial.trial_id not in self._trials:
            self._trials[trial.trial_id] = _TrialState(
                self.trial_number(trial), config_text(trial.config or {})
            )
        return self._trials[trial.trial_id]

    def _new_restart(self, trial: Any, before: str, after: str) -> str:
        """``restart 2: why`` between `before` and `after` when `restarts` counts one more for the trial
        than last said, else nothing."""
        if self.restarts is None:
            return ""
        count, reason = self.restarts(trial)
        if count <= self._restarts_shown.get(trial.trial_id, 0):
            return ""
        self._restarts_shown[trial.trial_id] = count
        return f"{before}restart {count}: {reason}{after}"

    def _end(self, state: _TrialState, how: str) -> None:
        state.running = False
        self._ended += 1
        self._print(f"trial {state.number}  {how}")

    def _value_text(self, state: _TrialState) -> str:
        return f"{self.header.metric} {'-' if state.value is None else f'{state.value:.3f}'}"

    def _eta(self, state: _TrialState) -> str:
        """Time to the trial's full budget at its mean epoch time so far (ASHA may stop it sooner)."""
        if state.epoch == 0:
            return "-"
        return duration_text(state.seconds / state.epoch * (self.header.max_epochs - state.epoch))

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
