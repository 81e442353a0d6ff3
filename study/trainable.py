"""The Ray Tune trainable: one `mtan` training run in the trial's own folder, reporting every epoch.

Trial n's run folder is ``STUDY/trials/trial_NNN/`` (n = its Optuna number): `mtan.train` writes
``config.json``, ``baselines.json``, ``metrics.jsonl`` (every epoch) and ``checkpoint.pt`` (every
``checkpoint_every`` epochs) there, atomically; on a remote storage path (``s3://``) it writes to local
scratch and the changed files are uploaded before each report. The epoch's metrics go to Tune without a
Ray checkpoint: ASHA needs none, and the folder is the trial's record. A trial that starts (first run,
Ray's retry after a lost node or process, a resumed study) continues from the checkpoint in its folder,
and one whose ``metrics.jsonl`` already holds its last epoch only reports that row again.

A failed run writes its reason to ``error.txt`` and re-raises, so Tune marks the trial ERROR. Tune cannot
be told not to retry one kind of error, so with ``max_failures`` > 0 a diverged trial is retried from its
last checkpoint, diverges again and ends failed: a bounded waste, the price of surviving lost nodes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS, DONE, SHOULD_CHECKPOINT, TRIAL_ID

from mtan.config import TrainConfig, config_from_flat
from mtan.data import DataBundle
from mtan.files import atomic_write_text
from mtan.run_folder import read_metrics
from mtan.train import train
from study.record import ERROR_FILE, trial_dirname
from study.space import TRIAL_NUMBER, train_overrides, trial_seed
from study.storage import TrialStore

# A checkpoint every 10 epochs: a lost node or driver costs a trial at most 9 epochs, and the bytes a
# trial writes per epoch are a tenth of a checkpoint (docs/study.md, "Checkpoints").
DEFAULT_CHECKPOINT_EVERY = 10
EPOCH_KEY = "epoch"  # a trial reports once per epoch: the step of every logged value and of ASHA
# Keys of a Tune result that Ray adds to what the trainable reported.
RAY_RESULT_KEYS = frozenset(AUTO_RESULT_KEYS) | {DONE, TRIAL_ID, SHOULD_CHECKPOINT, "experiment_tag"}


def reported_metrics(result: Mapping[str, Any]) -> dict[str, int | float]:
    """The numbers a trial reported in one Tune result (its metrics.jsonl row): Ray's own keys, the
    config and anything not a number left out."""
    return {
        key: value
        for key, value in result.items()
        if key not in RAY_RESULT_KEYS
        and not key.startswith("config/")
        and isinstance(value, Real)
        and not isinstance(value, bool)
    }


def epoch_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """A result's reported metrics without the epoch, as floats: the values loggers show at step = epoch."""
    return {key: float(value) for key, value in reported_metrics(result).items() if key != EPOCH_KEY}


def trial_number(trial: Any) -> int:
    """The Optuna trial number of a Tune trial (its point carries it)."""
    return int(trial.config[TRIAL_NUMBER])


def trial_name(trial: Any) -> str:
    """A Tune trial's name, as its folder under ``trials/``: ``trial_003``."""
    return trial_dirname(trial_number(trial))


def trial_config(point: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
    """The training configuration of one trial: the study's `base` configuration plus its point of the
    space, with the seed of its trial number (`study.space.trial_seed`); checked by `mtan.config`."""
    fields = {**train_overrides(point, base.epochs), "seed": trial_seed(point, base.seed)}
    return config_from_flat({**base.to_flat(), **fields})


def error_reason(error: BaseException) -> str:
    """One line saying why a trial failed: the exception's type and its message's first line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()


def run_trial(
    point: dict[str, Any],
    *,
    base: TrainConfig,
    data: DataBundle,
    baselines: Mapping[str, float],
    trials_uri: str,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> None:
    """Train one point of the space in its trial folder under `trials_uri` (a Tune function trainable;
    bind `base`, `data`, `baselines`, `trials_uri` and `checkpoint_every` first: the study's base
    configuration, its data and the trivial predictors' metrics on it, which the driver computes once for
    all trials).

    `data` comes from ``tune.with_parameters``: one copy in the object store, read zero-copy by the
    trials of a node.
    """
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # zero-copy data
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    config = trial_config(point, base)
    with TrialStore(trials_uri).working_folder(int(point[TRIAL_NUMBER])) as (run_dir, upload):
        rows = read_metrics(run_dir)
        if rows and rows[-1]["epoch"] >= config.epochs:  # it had ended; the driver had not heard of it
            tune.report(dict(rows[-1]))
            return

        def report(row: dict[str, float], out_dir: Path) -> None:
            upload()
            tune.report(dict(row))

        try:
            train(
                config,
                run_dir,
                resume=True,
                on_epoch=report,
                data=data,
                trivial_metrics=baselines,
                progress=False,
                checkpoint_every=checkpoint_every,
                final_checkpoint=False,
            )
        except Exception as error:
            atomic_write_text(run_dir / ERROR_FILE, error_reason(error) + "\n")
            upload()
            raise
