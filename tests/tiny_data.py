"""Tiny synthetic data sets in the MTAN layout, for tests."""

from pathlib import Path

from mtan.config import TrainConfig, make_config
from mtan.data.synthetic import write_split


def write_tiny_set(root: Path, train: int = 8, val: int = 4, seed: int = 0) -> Path:
    """A few synthetic scenes per split in the MTAN layout under `root`."""
    write_split(root, "train", train, seed)
    write_split(root, "val", val, seed)
    return root


def tiny_config(root: Path, **overrides) -> TrainConfig:
    """A config that trains in a second or two on `root`."""
    values = dict(
        data_root=str(root),
        image_height=32,
        image_width=64,
        width=0.0625,
        batch_size=4,
        epochs=2,
        num_threads=1,
        max_train_images=None,
        max_val_images=None,
    )
    values.update(overrides)
    return make_config("cpu", **values)
