"""The Ray Tune trainable: one `mtan` training run that reports every epoch with a checkpoint.

A trial's run directory is a local scratch directory; after every epoch `mtan.train` has written
``checkpoint.pt``, ``metrics.jsonl``, ``config.json`` and ``baselines.json`` there, and the callback hands
that directory to ``tune.report`` as the epoch's checkpoint (Ray copies it to the study's storage).
A restarted trial (node lost, study resumed) copies its last checkpoint back into a fresh scratch
directory and continues with ``train(..., resume=True)`` after the checkpoint's epoch.

A diverged run (``TrainingDiverged``) is re-raised, so Tune marks the trial ERROR with the reason. Tune
cannot be told not to retry one kind of error, so with ``max_failures`` > 0 a diverged trial is retried
from its last checkpoint (one epoch back, as every epoch is checkpointed), diverges again and ends
failed: the price is at most ``max_failures`` repeated epochs, the gain is surviving lost nodes.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune

from mtan.config import TrainConfig, config_from_flat
from mtan.data import DataBundle
from mtan.train import train
from study.space import train_overrides, trial_seed


def trial_config(point: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
    """The training configuration of one trial: the study's `base` configuration plus its point of the
    space, with the seed of its trial number (`study.space.trial_seed`); checked by `mtan.config`."""
    fields = {**train_overrides(point, base.epochs), "seed": trial_seed(point, base.seed)}
    return config_from_flat({**base.to_flat(), **fields})


def _report_epoch(row: dict[str, float], run_dir: Path) -> None:
    """`mtan.train`'s epoch callback: the epoch's metrics to Tune, the run directory as its checkpoint."""
    tune.report(dict(row), checkpoint=tune.Checkpoint.from_directory(str(run_dir)))


def run_trial(
    point: dict[str, Any], *, base: TrainConfig, data: DataBundle, baselines: Mapping[str, float]
) -> None:
    """Train one point of the space (a Tune function trainable; bind `base`, `data` and `baselines`
    first: the study's base configuration, its data and the trivial predictors' metrics on it, which the
    driver computes once for all trials).

    `data` comes from ``tune.with_parameters``: one copy in the object store, read zero-copy by the
    trials of a node.
    """
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "checkpoint created" line per epoch
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # zero-copy data
    config = trial_config(point, base)
    checkpoint = tune.get_checkpoint()
    with tempfile.TemporaryDirectory(prefix="mtan-trial-") as scratch:
        run_dir = Path(scratch)
        if checkpoint is not None:
            checkpoint.to_directory(str(run_dir))
        train(
            config,
            run_dir,
            resume=checkpoint is not None,
            on_epoch=_report_epoch,
            data=data,
            baselines=baselines,
            progress=False,
        )
