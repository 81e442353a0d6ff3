"""The trainable: each trial's training config, its per-epoch checkpoints, and training on shared data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import ray
import torch

from mtan.data import DataBundle, Split, load_data
from mtan.files import BASELINES_FILE, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from mtan.train import train
from study.settings import StudySettings
from study.space import SearchSpace
from study.trainable import trial_config
from tests.tiny_data import tiny_config

RUN_FILES = {CHECKPOINT_FILE, METRICS_FILE, CONFIG_FILE, BASELINES_FILE, SUMMARY_FILE}  # mtan.files' names


def test_a_trial_config_is_the_preset_plus_study_settings_plus_its_point():
    settings = StudySettings(max_epochs=10, seed=3, cpus_per_trial=2, overrides=(("image_height", 32),))
    _, report = SearchSpace().published_points()
    config = trial_config({**report, "trial_number": 4}, settings.base_config)
    assert (config.epochs, config.seed, config.num_threads, config.image_height) == (10, 3 + 4, 2, 32)
    assert (config.weighting, config.temperature, config.weight_decay) == ("dwa", 2.0, 1e-4)
    assert (config.step_size, config.gamma) == (2, 0.5)  # round(0.25 * 10)
    assert config.lr == settings.base_config.lr  # not searched: the preset's


def test_each_trial_keeps_one_checkpoint_holding_just_the_run_files(finished_study):
    table = pd.read_csv(finished_study / "results.csv").set_index("trial_id")
    for trial_dir in finished_study.glob("trial_*"):
        checkpoints = list(trial_dir.glob("checkpoint_*"))
        assert len(checkpoints) == 1, checkpoints  # only the latest is kept
        assert {p.name for p in checkpoints[0].iterdir()} == RUN_FILES
        state = torch.load(checkpoints[0] / "checkpoint.pt", weights_only=True)
        rows = (checkpoints[0] / "metrics.jsonl").read_text().splitlines()
        trial_id = trial_dir.name.rsplit("_", 1)[-1]
        assert state["epoch"] == len(rows) == table.loc[trial_id, "epochs"]
        assert json.loads(rows[-1])["score"] == table.loc[trial_id, "last_score"]


def read_only(bundle: DataBundle) -> DataBundle:
    def freeze(split: Split) -> Split:
        arrays = [np.array(a) for a in (split.images, split.labels, split.depth)]
        for array in arrays:
            array.setflags(write=False)
        return Split(*arrays)

    return dataclasses.replace(bundle, train=freeze(bundle.train), val=freeze(bundle.val))


def test_trials_read_the_object_store_copy_of_the_data_without_copying(ray_cluster, tiny_root, tmp_path):
    config = tiny_config(tiny_root, epochs=1)
    data = load_data(config)
    reference = ray.put(data)

    @ray.remote(num_cpus=1)
    def train_on(bundle: DataBundle) -> tuple[bool, float]:
        row = train(config, tmp_path / "run", data=bundle, progress=False)[-1]
        return bundle.train.images.flags.writeable, row["score"]

    writeable, score = ray.get(train_on.remote(reference))
    assert not writeable  # a zero-copy view of the shared object, not a private copy
    expected = train(config, tmp_path / "local", data=read_only(data), progress=False)[-1]["score"]
    assert score == expected  # the same run as on private read-only arrays
