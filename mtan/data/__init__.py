"""Data sets in the MTAN CityScapes layout, read once into compact in-memory arrays.

Arrays are numpy (not torch) so that a `DataBundle` put into Ray's object store is shared zero-copy by
all trials on a node. Images are held as uint8 (CityScapes images are 8-bit PNGs; the quantisation
error of a resized image is at most 0.5/255), labels as int8 (-1 = void), depth as float32 (0 = invalid).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from mtan.data.layout import DEPTH, check_prepared, check_some_depth, count_split, read_sample
from mtan.data.synthetic import ensure_synthetic
from mtan.errors import DataError

if TYPE_CHECKING:
    from mtan.config import TrainConfig


@dataclass(frozen=True)
class Split:
    """One split in memory: images (N,3,H,W) uint8, labels (N,H,W) int8, depth (N,H,W) float32."""

    images: np.ndarray
    labels: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class DataBundle:
    """The training and validation splits of one data set."""

    train: Split
    val: Split
    num_classes: int
    source: str


@dataclass(frozen=True)
class Batch:
    """One batch on a device: images float (N,3,H,W) in [0,1], labels long (N,H,W), depth (N,H,W)."""

    images: torch.Tensor
    labels: torch.Tensor
    depth: torch.Tensor


def read_split(root: Path, split: str, num_classes: int, limit: int | None = None) -> Split:
    """Read and check `root/split` at its stored resolution (the first `limit` samples if given)."""
    count = count_split(root, split)
    count = count if limit is None else min(count, limit)
    images, labels, depths = [], [], []
    shape: tuple[int, int] | None = None
    for i in range(count):
        sample = read_sample(root, split, i, (num_classes,), shape)
        shape = sample.image.shape[:2]
        images.append(np.round(sample.image.transpose(2, 0, 1) * 255).astype(np.uint8))
        labels.append(sample.labels[num_classes])
        depths.append(sample.depth)
    split_depth = np.stack(depths)
    check_some_depth(root / split / DEPTH, int(np.count_nonzero(split_depth > 0)))
    return Split(np.stack(images), np.stack(labels), split_depth)


def resize_split(split: Split, height: int, width: int) -> Split:
    """Resize to (height, width): area averaging for images, nearest neighbour for labels and depth."""
    if split.images.shape[2:] == (height, width):
        return split
    images = torch.from_numpy(split.images).float()
    mode = "area" if height <= split.images.shape[2] else "bilinear"
    images = F.interpolate(images, size=(height, width), mode=mode)
    nearest = {"size": (height, width), "mode": "nearest"}
    labels = F.interpolate(torch.from_numpy(split.labels)[:, None].float(), **nearest)[:, 0]
    depth = F.interpolate(torch.from_numpy(split.depth)[:, None], **nearest)[:, 0]
    return Split(
        images.round().clamp(0, 255).to(torch.uint8).numpy(),
        labels.to(torch.int8).numpy(),
        depth.numpy(),
    )


def load_data(config: TrainConfig) -> DataBundle:
    """The data set of a config: its `data_root`, or the synthetic default set when that is None."""
    if config.data_root is None:
        root, source = ensure_synthetic(), "synthetic"
    else:
        root, source = Path(config.data_root), str(config.data_root)
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist or is not a folder")
        check_prepared(root)
    limits = {"train": config.max_train_images, "val": config.max_val_images}
    splits = {
        name: resize_split(
            read_split(root, name, config.labels, limits[name]), config.image_height, config.image_width
        )
        for name in ("train", "val")
    }
    return DataBundle(splits["train"], splits["val"], config.labels, source)


def iterate_batches(
    split: Split,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Iterator[Batch]:
    """Batches of `split` in order, or shuffled with `generator`; the last batch may be smaller."""
    n = len(split)
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        images = torch.from_numpy(split.images[index]).to(device, non_blocking=True)
        yield Batch(
            images.float().div_(255.0),
            torch.from_numpy(split.labels[index]).to(device, non_blocking=True).long(),
            torch.from_numpy(split.depth[index]).to(device, non_blocking=True),
        )
