"""``python -m devtools.chaos --kills N --seed S``: kill a tiny study's driver at random moments, resume it,
and check after every kill that its record is consistent, and at the end that it finished exactly right.

Each driver (``python -m study.run``, a subprocess in its own process group) is stopped after a random
delay by SIGKILL, SIGTERM or SIGINT, in turn in an order chosen by the seed. A SIGKILL also kills the
driver's process group (its own Ray instance, as when the head machine is lost). The next driver resumes
the study (or starts it again when the killed one had not yet written study.json). A study that finishes
before the next kill is checked and a new one is started, until N kills are done; then the last one runs
to its end. Replay a failure with the seed it prints. Checked after every stop:

- study.json, where it exists, is valid and ``running`` (killed) or ``interrupted``; no results.csv
  before every trial ended; the study's lock is free;
- the journal holds at most num_samples trials, numbered 0, 1, ...; every trial folder is a trial of the
  journal; each folder's ``metrics.jsonl`` holds epochs 1..k with none missing, its checkpoint no later
  than k;
- no trial's point changed: every value it had at the previous check is still its value (a point that
  a kill cut half-way may only gain values); no two trials share a point; a trial whose folder has a
  ``config.json`` has its whole point in the journal and that config is the point's; with
  ``--per-weighting N`` no weighting method has more than N trials;
- wall_seconds is at most the drivers' measured times and at least those minus a bounded loss per run;

and when a study has finished: exactly num_samples trials, none RUNNING or WAITING; results.csv holds
each once with the journal's state and its ``metrics.jsonl``'s epochs (a completed one all of them, the
journal's last epoch the same), with ``--per-weighting N`` exactly N per weighting method; no checkpoint
left; study.json ``finished``.

With ``--objectives a,b`` (a study of several objectives), also after every stop: the journal's
directions are the objectives' in `mtan.metrics.METRICS`; no trial has an intermediate value; a
COMPLETE trial's values are its objectives' means over the last 10 epochs of its ``metrics.jsonl``, a
PRUNED or FAILED one has none; hypervolume.csv, where it exists, is the start of the history recomputed
from the journal (a kill may cut its last rows, never change one); and at the end: results.csv's
``pareto`` marks exactly the completed trials that no other completed trial dominates (a trial ASHA
stopped is never on it), and hypervolume.csv is the whole recomputed history.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mtan.errors import UserError, run_cli
from mtan.metrics import tail_mean
from mtan.run_folder import CHECKPOINT_FILE, CONFIG_FILE, read_config, read_metrics, read_trivial_metrics
from study.driver import WALL_CLOCK_EVERY_S, hypervolume_table
from study.front import (
    directions,
    maximised,
    non_dominated,
    parse_objectives,
)
from study.lock import StudyLock
from study.record import (
    FINISHED,
    HYPERVOLUME_CSV,
    INTERRUPTED,
    JOURNAL,
    RUNNING,
    STUDY_JSON,
    TRIALS_DIR,
    StudyFolder,
    trial_dirname,
)
from study.run import RESUME_HINT, said_its_last
from study.search.journal import JournalLock
from study.settings import StudySettings
from study.space import TRIAL_NUMBER, WEIGHTING, SearchSpace
from study.trainable import trial_config

REPO = Path(__file__).resolve().parents[1]
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
NUM_SAMPLES, MAX_EPOCHS = 5, 3  # a study's trials (without --per-weighting) and epochs
STUDY_ARGS = (
    "--max-epochs", str(MAX_EPOCHS), "--grace-period", "1", "--reduction-factor", "2",
    "--checkpoint-every", "1",
)  # fmt: skip
TINY_SET = ("max_train_images=16", "max_val_images=8")
STATE_OF = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "stopped_early", TrialState.FAIL: "failed"}
RAY_START_MESSAGE = "timed out during startup"  # Ray's, when its node does not come up in time
RAY_START_RETRIES = 5
STOP_TIMEOUT_S = 180  # a driver given SIGTERM or SIGINT must have ended by then


class Violation(Exception):
    """An invariant of the study's record does not hold."""


@dataclass
class Chaos:
    """One chaos run's settings and counts."""

    storage: Path
    seed: int
    max_delay: float
    address: str | None
    data_root: str | None
    sets: tuple[str, ...]
    wall_slack: float
    per_weighting: int | None = None  # the studies' --per-weighting (else --num-samples NUM_SAMPLES)
    objectives: tuple[str, ...] = ()  # the studies' --objectives (empty: one objective)
    rng: random.Random = field(init=False)
    signal_order: list[signal.Signals] = field(init=False)  # kill k uses signal_order[k % 3]
    counts: dict[str, int] = field(default_factory=dict)
    failed_starts: int = 0  # Ray failed to start this many times in a row

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.signal_order = self.rng.sample(SIGNALS, len(SIGNALS))

    def next_signal(self) -> signal.Signals:
        """The signal of the next kill: the seed's order of the three, in turn, so that any three kills in
        a row use each once whatever the timing (a driver that ends before its delay draws none)."""
        return self.signal_order[self.counts.get("kills", 0) % len(self.signal_order)]

    @property
    def num_samples(self) -> int:
        """The trials of each study."""
        return (
            NUM_SAMPLES if self.per_weighting is None else self.per_weighting * len(SearchSpace().weightings)
        )

    def design_args(self) -> list[str]:
        """The flags that size a study: --num-samples or --per-weighting."""
        if self.per_weighting is None:
            return ["--num-samples", str(NUM_SAMPLES)]
        return ["--per-weighting", str(self.per_weighting)]

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def command(self, name: str, resume: bool) -> list[str]:
        """The driver's command line for study `name`."""
        args = ["--storage-path", str(self.storage), "--name", name]
        if resume:
            return [sys.executable, "-m", "study.run", "--resume", *args, *self._address()]
        sets = [item for s in self.sets for item in ("--set", s)]
        data = ["--data-root", self.data_root] if self.data_root else []
        objectives = ["--objectives", ",".join(self.objectives)] if self.objectives else []
        study_args = [*self.design_args(), *STUDY_ARGS, *objectives, *data, *sets]
        return [sys.executable, "-m", "study.run", *args, *study_args, *self._address()]

    def _address(self) -> list[str]:
        return ["--address", self.address] if self.address else []


@dataclass
class Study:
    """What the checks know of one study: its folder and the drivers' measured run times."""

    folder: Path
    runs: list[tuple[float, bool]] = field(default_factory=list)  # (seconds, killed with SIGKILL)
    points: dict[int, dict[str, Any]] = field(default_factory=dict)  # each trial's values at the last check


def start(chaos: Chaos, study: Study) -> tuple[subprocess.Popen, float, Path]:
    """Start a driver on `study` (resuming it when it has a study.json); its output goes to a file."""
    resume = (study.folder / STUDY_JSON).exists()
    log = Path(tempfile.mkstemp(prefix="chaos-driver-", suffix=".log", dir=chaos.storage)[1])
    # this checkout first on the drivers' path, as on this process's
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            chaos.command(study.folder.name, resume),
            env={**os.environ, "PYTHONPATH": path},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a SIGKILL takes its Ray instance too
        )
    chaos.count("resumes" if resume else "starts")
    return process, time.monotonic(), log


def stop(
    chaos: Chaos, study: Study, process: subprocess.Popen, began: float, log: Path, before: bytes | None
) -> int | None:
    """Kill the driver after a random delay, or let it end first; its exit code when it ended by itself,
    or 0 when it had just finished. `before` is study.json before the driver started."""
    delay = chaos.rng.uniform(0.5, chaos.max_delay)
    kind = chaos.next_signal()
    try:
        code = process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        code = None
    if code is not None:
        study.runs.append((time.monotonic() - began, False))
        _kill_group(process)
        return code
    print(f"  kill {chaos.counts.get('kills', 0) + 1}: {kind.name} after {delay:.1f} s", flush=True)
    process.send_signal(kind)
    try:
        code = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise Violation(f"the driver did not stop within {STOP_TIMEOUT_S} s of {kind.name}") from None
    # a driver that wrote nothing had not begun the study: its time is not the study's
    study.runs.append((time.monotonic() - began if _record(study) != before else 0.0, kind == signal.SIGKILL))
    _kill_group(process)
    chaos.count("kills")
    chaos.count(kind.name)
    output = log.read_text(errors="replace")
    early = (-signal.SIGTERM, -signal.SIGINT, -signal.SIGABRT, 1)
    if kind != signal.SIGKILL and code in early and _record(study) == before:
        # in Python's or Ray's start, before the driver's handlers were in place: nothing was written
        chaos.count("stopped before it began")
        log.unlink(missing_ok=True)
        return None
    if kind == signal.SIGTERM and code == -signal.SIGTERM and said_its_last(output):
        # while Ray shut down, after the study's files and last line (Ray's core resets SIGTERM then)
        chaos.count("SIGTERM while Ray shut down")
    elif kind != signal.SIGKILL and code not in (0, 130):
        raise Violation(f"{kind.name}: the driver exited {code}, not 130 (or 0):\n{output[-3000:]}")
    if kind != signal.SIGKILL and code == 130 and RESUME_HINT not in output:
        raise Violation(f"{kind.name}: exit 130 without the resume hint:\n{output[-3000:]}")
    log.unlink(missing_ok=True)
    return 0 if code == 0 else None


def _ray_did_not_start(chaos: Chaos, study: Study, log: Path, before: bytes | None, code: int) -> None:
    """A driver that ended by itself with an error is a violation, unless Ray could not start on an
    overloaded machine (its own message) before anything was written: then it is counted and tried again,
    up to `RAY_START_RETRIES` times in a row."""
    output = log.read_text(errors="replace")
    chaos.count("Ray failed to start")
    chaos.failed_starts += 1
    if RAY_START_MESSAGE in output and _record(study) == before and chaos.failed_starts <= RAY_START_RETRIES:
        print(f"  Ray did not start (exit {code}); again", flush=True)
        log.unlink(missing_ok=True)
        return
    raise Violation(f"a driver exited {code} by itself:\n{output[-3000:]}")


def _record(study: Study) -> bytes | None:
    path = study.folder / STUDY_JSON
    return path.read_bytes() if path.exists() else None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def journal_study(study: Study) -> optuna.Study | None:
    """The journal's Optuna study (read only; None when there is no journal yet)."""
    path = study.folder / JOURNAL
    if not path.exists():
        return None
    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=JournalLock(path)))
    names = [s.study_name for s in storage.get_all_studies()]
    if study.folder.name not in names:
        return None
    return optuna.load_study(study_name=study.folder.name, storage=storage)


def journal_trials(study: Study) -> list[optuna.trial.FrozenTrial]:
    """The journal's trials (none when there is no journal yet)."""
    journal = journal_study(study)
    return [] if journal is None else journal.trials


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """A trial folder's metrics.jsonl rows; a line that is not an epoch's row is a torn write, a
    `Violation` (every write of a run folder is atomic)."""
    try:
        return read_metrics(folder)
    except UserError as error:
        raise Violation(str(error)) from None


def check_any_moment(chaos: Chaos, study: Study) -> None:
    """The invariants that hold whenever no driver runs."""
    record = _study_json(study)
    trials = journal_trials(study)
    numbers = [t.number for t in trials]
    _require(numbers == list(range(len(trials))), f"journal numbers {numbers} are not 0, 1, ...")
    total = chaos.num_samples
    _require(len(trials) <= total, f"{len(trials)} trials in the journal, more than {total}")
    finished = len(trials) == total and all(t.state in STATE_OF for t in trials)
    if record is not None:
        check_points(chaos, study, trials, StudySettings.from_study_json(record))
        status = record.get("status")
        allowed = {RUNNING, INTERRUPTED} if not finished else {RUNNING, INTERRUPTED, FINISHED}
        _require(status in allowed, f"study.json status {status!r} (journal finished: {finished})")
        _check_wall(chaos, study, record)
    if not finished:
        _require(not (study.folder / "results.csv").exists(), "results.csv before every trial ended")
    for folder in sorted((study.folder / TRIALS_DIR).glob("trial_*")):
        _require(folder.name in {trial_dirname(n) for n in numbers}, f"{folder.name} is not in the journal")
        epochs = [row["epoch"] for row in read_rows(folder)]
        _require(epochs == list(range(1, len(epochs) + 1)), f"{folder.name}: metrics.jsonl epochs {epochs}")
        _require(len(epochs) <= MAX_EPOCHS, f"{folder.name}: {len(epochs)} epochs")
        if (folder / CHECKPOINT_FILE).exists():
            saved = torch.load(folder / CHECKPOINT_FILE, weights_only=True)["epoch"]
            _require(
                saved <= len(epochs), f"{folder.name}: checkpoint of epoch {saved}, rows up to {len(epochs)}"
            )
    if chaos.objectives:
        check_objectives(chaos, study, trials, finished=False)
    if study.folder.exists():
        try:
            with StudyLock(study.folder):
                pass
        except UserError as error:
            raise Violation(f"the study is still locked after its driver ended: {error}") from None


def check_objectives(
    chaos: Chaos, study: Study, trials: list[optuna.trial.FrozenTrial], finished: bool
) -> None:
    """The invariants of a study of several objectives (see the module's docstring)."""
    journal = journal_study(study)
    if journal is not None:
        found = [d.name.lower() for d in journal.directions]
        _require(found == directions(chaos.objectives), f"journal directions {found} for {chaos.objectives}")
    for trial in trials:
        name = trial_dirname(trial.number)
        _require(not trial.intermediate_values, f"{name}: intermediate values in a multi-objective study")
        if trial.state == TrialState.COMPLETE:
            tail = tail_mean(read_rows(study.folder / TRIALS_DIR / name))
            expected = [tail[key] for key in chaos.objectives]
            _require(
                trial.values == expected, f"{name}: told {trial.values}, its last-10-epoch means {expected}"
            )
        elif trial.state in STATE_OF:
            _require(trial.values is None, f"{name}: {trial.state.name} with values {trial.values}")
    path = study.folder / HYPERVOLUME_CSV
    if path.exists():
        written = pd.read_csv(path)
        expected = hypervolume_table(trials, chaos.objectives, read_trivial_metrics(study.folder))
        length = len(expected) if finished else len(written)
        _require(
            len(written) == length <= len(expected) and _same_rows(written, expected.iloc[:length]),
            f"hypervolume.csv is not the start of the journal's history:\n{written}\n{expected}",
        )
    else:
        _require(not finished, "a finished study without hypervolume.csv")
    if finished:
        table = pd.read_csv(study.folder / "results.csv")
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        on = non_dominated([t.values for t in completed], maximised(chaos.objectives)) if completed else []
        expected_front = sorted(t.number for t, front in zip(completed, on, strict=True) if front)
        marked = sorted(int(n) for n in table.loc[table["pareto"], "trial"])
        _require(marked == expected_front, f"results.csv's front {marked}, the journal's {expected_front}")


def check_points(
    chaos: Chaos, study: Study, trials: list[optuna.trial.FrozenTrial], settings: StudySettings
) -> None:
    """Each trial's point is fixed once asked: no recorded value changed since the last check (a point cut
    half-way may gain values), no two trials share a point, and a trial that began training (its folder
    has a config.json) has its whole point in the journal and trained it; with --per-weighting no method
    has more than its trials."""
    space = settings.space
    for trial in trials:
        before = study.points.get(trial.number, {})
        changed = {k: (v, trial.params.get(k)) for k, v in before.items() if trial.params.get(k) != v}
        _require(not changed, f"trial {trial.number}: its point changed (before, now): {changed}")
        study.points[trial.number] = dict(trial.params)
    owners: dict[tuple, int] = {}
    for trial in trials:
        if trial.params and space.is_complete(trial.params):
            key = tuple(sorted(trial.params.items()))
            _require(key not in owners, f"trials {owners.get(key)} and {trial.number} share a point {key}")
            owners[key] = trial.number
    for trial in trials:
        path = study.folder / TRIALS_DIR / trial_dirname(trial.number) / CONFIG_FILE
        if not path.exists():
            continue
        _require(space.is_complete(trial.params), f"trial {trial.number} trained; its point {trial.params}")
        try:
            trained = read_config(path.parent)
        except UserError as error:  # a torn write: it is written atomically
            raise Violation(str(error)) from None
        point = {**trial.params, TRIAL_NUMBER: trial.number}
        expected = trial_config(point, settings.base_config).to_flat()
        differ = {
            k: (trained.get(k), expected[k]) for k in (*space.fields, "seed") if trained.get(k) != expected[k]
        }
        _require(not differ, f"trial {trial.number} trained another point (trained, recorded): {differ}")
    if chaos.per_weighting is not None:
        counts = Counter(t.params[WEIGHTING] for t in trials if WEIGHTING in t.params)
        _require(
            max(counts.values(), default=0) <= chaos.per_weighting, f"trials per weighting {dict(counts)}"
        )


def check_finished(chaos: Chaos, study: Study) -> None:
    """The invariants of a finished study."""
    check_any_moment(chaos, study)
    record = _study_json(study)
    _require(record is not None and record.get("status") == FINISHED, "study.json is not finished")
    trials = journal_trials(study)
    total = chaos.num_samples
    _require(len(trials) == total, f"{len(trials)} trials, not {total}")
    states = [t.state for t in trials]
    _require(all(s in STATE_OF for s in states), f"trials not ended in the journal: {states}")
    table = pd.read_csv(study.folder / "results.csv")
    _require(list(table["trial"]) == list(range(total)), f"results.csv trials {list(table['trial'])}")
    if chaos.per_weighting is not None:
        counts = table[WEIGHTING].value_counts().to_dict()
        expected = dict.fromkeys(SearchSpace().weightings, chaos.per_weighting)
        _require(counts == expected, f"results.csv trials per weighting {counts}, not {expected}")
    for trial, row in zip(trials, table.itertuples(), strict=True):
        name = trial_dirname(trial.number)
        _require(
            row.state == STATE_OF[trial.state], f"{name}: results.csv {row.state}, journal {trial.state}"
        )
        epochs = len(read_rows(study.folder / TRIALS_DIR / name))
        _require(row.epochs == epochs, f"{name}: results.csv {row.epochs} epochs, metrics.jsonl {epochs}")
        if trial.state == TrialState.COMPLETE:
            _require(epochs == MAX_EPOCHS, f"{name}: completed after {epochs} epochs")
        if trial.state != TrialState.FAIL:
            last = trial.user_attrs.get("epoch")
            _require(last == epochs, f"{name}: the journal's last epoch {last}, metrics.jsonl's {epochs}")
            if not chaos.objectives:
                _require(max(trial.intermediate_values) == epochs, f"{name}: last intermediate value")
        _require(
            not (study.folder / TRIALS_DIR / name / CHECKPOINT_FILE).exists(), f"{name}: checkpoint kept"
        )
    if chaos.objectives:
        check_objectives(chaos, study, trials, finished=True)


def _same_rows(written: pd.DataFrame, expected: pd.DataFrame) -> bool:
    """hypervolume.csv's rows as written against the recomputed ones: the counts and trial numbers
    equal, the hypervolumes to the last digits a CSV keeps."""
    if list(written.columns) != list(expected.columns) or len(written) != len(expected):
        return False
    counts = ["completed", "trial", "front_size"]
    same = (written[counts].to_numpy(dtype=int) == expected[counts].to_numpy(dtype=int)).all()
    close = np.allclose(
        written["hypervolume"].to_numpy(float), expected["hypervolume"].to_numpy(float), rtol=1e-12, atol=0.0
    )
    return bool(same and close)


def _check_wall(chaos: Chaos, study: Study, record: dict[str, Any]) -> None:
    wall = float(record.get("wall_seconds") or 0.0)
    measured = sum(seconds for seconds, _ in study.runs)
    loss = sum(chaos.wall_slack + (WALL_CLOCK_EVERY_S if killed else 0.0) for _, killed in study.runs)
    _require(wall <= measured + 1.0, f"wall_seconds {wall:.1f} > the drivers' {measured:.1f} s")
    _require(wall >= measured - loss, f"wall_seconds {wall:.1f} < the drivers' {measured:.1f} s - {loss:.0f}")


def _study_json(study: Study) -> dict[str, Any] | None:
    """study.json (None before the first driver wrote it); one that `study.record` cannot read is a torn
    write, a `Violation` (it is written atomically)."""
    try:
        return StudyFolder(study.folder).read_study()
    except UserError as error:
        raise Violation(str(error)) from None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Violation(message)


def run_chaos(chaos: Chaos, kills: int) -> dict[str, int]:
    """Kill drivers `kills` times (studies after studies), then let the last study finish; the counts."""
    study = Study(chaos.storage / f"chaos-{chaos.seed}-0")
    print(f"chaos seed {chaos.seed}: study {study.folder}", flush=True)
    while chaos.counts.get("kills", 0) < kills:
        before = _record(study)
        process, began, log = start(chaos, study)
        code = stop(chaos, study, process, began, log, before)
        if code is not None and code != 0:
            _ray_did_not_start(chaos, study, log, before, code)
            continue
        chaos.failed_starts = 0
        if code is None:
            check_any_moment(chaos, study)
            chaos.count("checks")
            continue
        log.unlink(missing_ok=True)
        check_finished(chaos, study)
        chaos.count("studies finished")
        print(f"  {study.folder.name} finished after {len(study.runs)} runs: invariants hold", flush=True)
        study = Study(chaos.storage / f"chaos-{chaos.seed}-{chaos.counts['studies finished']}")
    while True:  # the last study, to its end
        before = _record(study)
        process, began, log = start(chaos, study)
        code = process.wait()
        study.runs.append((time.monotonic() - began, False))
        _kill_group(process)
        if code == 0:
            break
        _ray_did_not_start(chaos, study, log, before, code)
    log.unlink(missing_ok=True)
    check_finished(chaos, study)
    chaos.count("studies finished")
    print(f"  {study.folder.name} finished after {len(study.runs)} runs: invariants hold", flush=True)
    return chaos.counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3, help="how many times to kill a driver (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="chooses the delays and signals (default 0)")
    parser.add_argument(
        "--max-delay", type=float, default=40.0, help="longest wait before a kill (default 40 s)"
    )
    parser.add_argument("--storage-path", type=Path, help="where the studies go (default: a new temp folder)")
    parser.add_argument("--address", help="drivers join this Ray cluster (default: each starts its own)")
    parser.add_argument("--data-root", help="the study's data (default: the synthetic set)")
    parser.add_argument("--set", action="append", default=[], help="a further study --set (e.g. data size)")
    parser.add_argument(
        "--wall-slack", type=float, default=30.0, help="wall time a driver may leave uncounted (default 30 s)"
    )
    parser.add_argument(
        "--per-weighting",
        type=int,
        help=f"studies of N trials per weighting method (default: --num-samples {NUM_SAMPLES})",
    )
    parser.add_argument(
        "--objectives", help="studies of several objectives, e.g. miou,abs_err (default: one, the score)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.kills < 0 or args.max_delay <= 0.5:
        raise UserError("--kills must be 0 or more and --max-delay more than 0.5")
    if args.per_weighting is not None and args.per_weighting < 1:
        raise UserError(f"--per-weighting must be at least 1, got {args.per_weighting}")
    objectives = parse_objectives(args.objectives) if args.objectives is not None else ()
    storage = (args.storage_path or Path(tempfile.mkdtemp(prefix="mtan-chaos-"))).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    sets = (*TINY_SET, *args.set)
    chaos = Chaos(
        storage,
        args.seed,
        args.max_delay,
        args.address,
        args.data_root,
        sets,
        args.wall_slack,
        args.per_weighting,
        objectives,
    )
    try:
        counts = run_chaos(chaos, args.kills)
    except Violation as violation:
        design = f" --per-weighting {args.per_weighting}" if args.per_weighting is not None else ""
        design += f" --objectives {args.objectives}" if args.objectives is not None else ""
        replay = f"python -m devtools.chaos --kills {args.kills} --seed {args.seed}{design}"
        print(f"VIOLATED: {violation}\nreplay: {replay}")
        print(f"counts so far: {chaos.counts}")
        return 1
    print(f"all invariants held: {counts}")
    return 0


if __name__ == "__main__":
    run_cli(main)
