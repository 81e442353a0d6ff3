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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from mtan.config import TrainConfig, make_config
from mtan.data import DataBundle
from mtan.train import train
from study.space import train_overrides, trial_seed


@dataclass(frozen=True)
class TrialSettings:
    """What all trials of a study share: the preset, the data, the epoch budget, the hardware."""

    preset: str = "cpu"
    data_root: str | None = None
    max_epochs: int = 10
    seed: int = 0  # the study's; trial n trains with seed + n
    device: str = "cpu"
    num_threads: int | None = 1
    overrides: tuple[tuple[str, Any], ...] = ()  # further `TrainConfig` fields, e.g. image size

    def base_config(self) -> TrainConfig:
        """The preset with the study-wide settings, before the searched values."""
        return self.config_with({})

    def config_with(self, fields: Mapping[str, Any]) -> TrainConfig:
        """The preset with the study-wide settings and `fields` on top (validated by `make_config`)."""
        values: dict[str, Any] = {
            "data_root": self.data_root,
            "epochs": self.max_epochs,
            "seed": self.seed,
            "device": self.device,
            "num_threads": self.num_threads,
            **dict(self.overrides),
            **fields,
        }
        return make_config(self.preset, **values)


def trial_config(point: Mapping[str, Any], settings: TrialSettings) -> TrainConfig:
    """The training configuration of one trial: the shared settings plus its point of the space, with
    the seed of its trial number (`study.space.trial_seed`)."""
    overrides = train_overrides(point, settings.max_epochs)
    return settings.config_with({**overrides, "seed": trial_seed(point, settings.seed)})


def _report_epoch(row: dict[str, float], run_dir: Path) -> None:
    """`mtan.train`'s epoch callback: the epoch's metrics to Tune, the run directory as its checkpoint."""
    tune.report(dict(row), checkpoint=tune.Checkpoint.from_directory(str(run_dir)))


def run_trial(point: dict[str, Any], *, settings: TrialSettings, data: DataBundle) -> None:
    """Train one point of the space (a Tune function trainable; bind `settings` and `data` first).

    `data` comes from ``tune.with_parameters``: one copy in the object store, read zero-copy by the
    trials of a node.
    """
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "checkpoint created" line per epoch
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # zero-copy data
    config = trial_config(point, settings)
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
            progress=False,
        )
