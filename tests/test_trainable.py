"""The trainable: each trial's training config, its per-epoch checkpoints, and training on shared data."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import ray
import torch

from mtan.data import DataBundle, Split, load_data
from mtan.evaluate import trivial_predictor_metrics
from mtan.run_folder import CHECKPOINT_FILE, read_metrics, write_metrics
from mtan.train import train
from study import trainable
from study.settings import StudySettings
from study.space import SearchSpace
from study.storage import TrialStore
from study.trainable import trial_config
from tests.tiny_data import tiny_config

RECORD_FILES = {"metrics.jsonl", "summary.json", "config.json", "baselines.json"}
TINY = (("batch_size", 4), ("image_height", 32), ("image_width", 64), ("width", 0.0625))


def test_a_trial_config_is_the_preset_plus_study_settings_plus_its_point():
    settings = StudySettings(max_epochs=10, seed=3, cpus_per_trial=2, overrides=(("image_height", 32),))
    _, report = SearchSpace().published_points()
    config = trial_config({**report, "trial_number": 4}, settings.base_config)
    assert (config.epochs, config.seed, config.num_threads, config.image_height) == (10, 3 + 4, 2, 32)
    assert (config.weighting, config.temperature, config.weight_decay) == ("dwa", 2.0, 1e-4)
    assert (config.step_size, config.gamma) == (2, 0.5)  # round(0.25 * 10)
    assert config.lr == settings.base_config.lr  # not searched: the preset's


def test_an_ended_trial_keeps_its_record_and_no_checkpoint(finished_study):
    table = pd.read_csv(finished_study / "results.csv").set_index("trial")
    study = json.loads((finished_study / "study.json").read_text())
    for number, row in table.iterrows():
        folder = finished_study / "trials" / f"trial_{number:03d}"
        assert {p.name for p in folder.iterdir()} == RECORD_FILES
        rows = (folder / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == row["epochs"] and json.loads(rows[-1])["score"] == row["last_score"]
        assert json.loads((folder / "config.json").read_text())["seed"] == study["settings"]["seed"] + number


def test_a_trial_continues_from_its_folder_on_remote_storage(tiny_root, tmp_path, monkeypatch):
    reported: list[int] = []
    monkeypatch.setattr(trainable.tune, "report", lambda row: reported.append(row["epoch"]))
    base = StudySettings(data_root=str(tiny_root), max_epochs=3, overrides=TINY).base_config
    data = load_data(base)
    baselines = trivial_predictor_metrics(data, base.batch_size)
    point = {**SearchSpace().published_points()[1], "trial_number": 7}
    uri = f"file://{tmp_path}/trials"  # a URI: the trial trains in scratch and uploads its files
    folder = tmp_path / "trials" / "trial_007"

    trainable.run_trial(point, base=base, data=data, baselines=baselines, trials_uri=uri, checkpoint_every=2)
    assert reported == [1, 2, 3]
    assert {p.name for p in folder.iterdir()} == RECORD_FILES | {CHECKPOINT_FILE}
    assert torch.load(folder / CHECKPOINT_FILE, weights_only=True)["epoch"] == 2  # none after the last
    straight = read_metrics(folder)

    trainable.run_trial(point, base=base, data=data, baselines=baselines, trials_uri=uri, checkpoint_every=2)
    assert reported[3:] == [3]  # it had ended: its last row again, nothing trained

    write_metrics(folder, straight[:2])  # as if the driver died after epoch 2
    trainable.run_trial(point, base=base, data=data, baselines=baselines, trials_uri=uri, checkpoint_every=2)
    assert reported[4:] == [3]  # continued from the epoch-2 checkpoint
    again = read_metrics(folder)
    assert [r["epoch"] for r in again] == [1, 2, 3]
    assert again[2]["score"] == pytest.approx(straight[2]["score"], rel=1e-4)

    TrialStore(uri).end(7, failed=False)
    assert {p.name for p in folder.iterdir()} == RECORD_FILES


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


def test_a_results_reported_metrics_are_the_trainables_numbers_only():
    result = {
        "epoch": 2, "score": 0.5, "seconds": 1, "miou": math.nan, "done": False, "trial_id": "x",
        "time_total_s": 3.0, "config/gamma": 0.5, "config": {"gamma": 0.5}, "weighting": "dwa",
    }  # fmt: skip
    reported = trainable.reported_metrics(result)
    assert reported.keys() == {"epoch", "score", "seconds", "miou"} and reported["epoch"] == 2
    assert trainable.epoch_metrics(result).keys() == {"score", "seconds", "miou"}
    assert trainable.epoch_metrics(result)["seconds"] == 1.0
