"""The report's picture of predictions: the best confirmed configuration's first retrained seed (the
study's best trial in reproduce/configs.csv, whichever mode retrained it; its lowest seed that kept a
checkpoint) on the fixed validation images, drawn by `mtan.figures` (the same panel as
``python -m mtan.evaluate --figures``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from analysis.load import StudyResults, best_config_name
from mtan.data import load_data
from mtan.errors import UserError
from mtan.evaluate import load_trained_run
from mtan.figures import fixed_indices, prediction_figure
from mtan.run_folder import CHECKPOINT_FILE
from study.record import CONFIGS_CSV, REPRODUCE_DIR, StudyFolder

PREDICTIONS_FILE = "fig_predictions.png"


@dataclass(frozen=True)
class PredictionPanel:
    """The drawn panel and what it shows: which run, after how many epochs, which validation images."""

    figure: Figure
    config: str
    seed: int
    epoch: int
    epochs: int
    indices: list[int]


def best_confirmed_checkpoint(folder: StudyFolder) -> tuple[str, int, Path] | str:
    """(configuration, seed, checkpoint) of the best confirmed configuration's first seed that kept a
    checkpoint, or the reason in one sentence why there is none."""
    if not folder.reproduce.is_dir():
        return f"no configuration was retrained (no {REPRODUCE_DIR}/ folder)"
    config = best_config_name(folder)
    if config is None:
        return f"{REPRODUCE_DIR}/{CONFIGS_CSV} is missing or does not hold the study's best trial"
    for seed in folder.retrained_seeds(config):
        checkpoint = folder.seed_run(config, seed) / CHECKPOINT_FILE
        if checkpoint.is_file():
            return config, seed, checkpoint
    return f"no retrained run of the best configuration {config} kept its {CHECKPOINT_FILE}"


def prediction_panel(results: StudyResults, images: int = 4) -> PredictionPanel | str:
    """The predictions of the best confirmed configuration's first seed on `images` fixed validation
    images of its own data set, or the reason in one sentence why they cannot be drawn."""
    found = best_confirmed_checkpoint(StudyFolder(results.path))
    if isinstance(found, str):
        return found
    config_name, seed, checkpoint = found
    try:
        run = load_trained_run(checkpoint)
        # only the validation split is drawn: read one training image, not the whole training set
        data = load_data(dataclasses.replace(run.config, max_train_images=1))
    except UserError as error:  # an unreadable checkpoint, or its data set moved or changed
        return f"{config_name} seed {seed} cannot be drawn: {error}"
    indices = fixed_indices(len(data.val), images)
    title = (
        f"best confirmed configuration {config_name}, seed {seed}, epoch {run.epoch} of "
        f"{run.config.epochs}: validation images {indices}"
    )
    figure = prediction_figure(run.model, data, indices, title=title)
    return PredictionPanel(figure, config_name, seed, run.epoch, run.config.epochs, indices)
