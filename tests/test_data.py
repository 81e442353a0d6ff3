"""The synthetic set, the loader and its checks of bad data."""

import shutil

import numpy as np
import pytest
import torch

from mtan.data import iterate_batches, load_data, read_split, resize_split
from mtan.data.synthetic import ensure_synthetic, render_scene
from mtan.errors import DataError
from tests.tiny_data import tiny_config, write_tiny_set


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_set(tmp_path_factory.mktemp("tiny"))


def test_synthetic_scenes_are_deterministic_and_hold_all_seven_categories():
    a = render_scene(np.random.default_rng([0, 0, 3]))
    b = render_scene(np.random.default_rng([0, 0, 3]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    labels = np.concatenate([render_scene(np.random.default_rng([0, 0, i]))[1].ravel() for i in range(20)])
    assert set(np.unique(labels)) == {-1, 0, 1, 2, 3, 4, 5, 6}


def test_synthetic_depth_is_inverse_depth_growing_towards_the_camera():
    image, label, depth = render_scene(np.random.default_rng(1))
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    assert np.all(depth[label == 4] == 0)  # sky: invalid
    assert np.all(depth[label == -1] == 0)  # ego bonnet: invalid
    ground = np.where((label == 0) & (depth > 0), depth, -1.0)
    rows = ground.max(axis=1)
    rows = rows[rows > 0]
    assert np.all(np.diff(rows) >= 0) and 0.3 < depth.max() <= 0.45


def test_ensure_synthetic_writes_once_and_reuses(tmp_path, monkeypatch):
    import mtan.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "SPLIT_SIZES", {"train": 3, "val": 2})
    root = ensure_synthetic(tmp_path)
    assert sorted(p.name for p in (root / "val" / "depth").iterdir()) == ["0.npy", "1.npy"]
    stamp = (root / "train" / "image" / "0.npy").stat().st_mtime_ns
    assert ensure_synthetic(tmp_path) == root
    assert (root / "train" / "image" / "0.npy").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no staging folder left behind


def test_loader_reads_compact_arrays_and_resizes(tiny_root):
    data = load_data(tiny_config(tiny_root))
    assert data.train.images.shape == (8, 3, 32, 64) and data.train.images.dtype == np.uint8
    assert data.train.labels.dtype == np.int8 and data.val.depth.shape == (4, 32, 64)
    full = read_split(tiny_root, "train", 7)
    # nearest neighbour keeps label values and takes every fourth pixel
    assert np.array_equal(data.train.labels, full.labels[:, ::4, ::4])
    # area averaging of the image equals the 4x4 block mean
    block = full.images[0].reshape(3, 32, 4, 64, 4).astype(np.float64).mean((2, 4))
    assert np.abs(data.train.images[0].astype(np.float64) - block).max() <= 0.5 + 1e-9
    assert resize_split(full, 128, 256) is full


def test_batches_cover_the_split_once_with_an_uneven_last_batch(tiny_root):
    split = read_split(tiny_root, "val", 7)
    batches = list(iterate_batches(split, 3, torch.device("cpu"), torch.Generator().manual_seed(0)))
    assert [len(b.images) for b in batches] == [3, 1]
    seen = torch.cat([b.depth for b in batches]).sum()
    assert seen.item() == pytest.approx(float(split.depth.sum()), rel=1e-6)
    assert batches[0].images.dtype == torch.float32 and batches[0].images.max() <= 1.0


def corrupt(root, tmp_path, action):
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    action(broken)
    return broken


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda r: shutil.rmtree(r / "val" / "depth"), r"val/depth: missing folder"),
        (lambda r: (r / "train" / "image" / "7.npy").unlink(), r"different numbers of files \(image=7"),
        (
            lambda r: np.save(r / "train" / "image" / "2.npy", np.zeros((64, 64, 3), np.float32)),
            r"train/image/2.npy: image shape \(64, 64, 3\), expected 128x256x3",
        ),
        (
            lambda r: np.save(r / "train" / "label_7" / "1.npy", np.full((128, 256), 7.0, np.float32)),
            r"label_7/1.npy: label values 7..7 outside -1..6",
        ),
        (
            lambda r: np.save(r / "val" / "depth" / "0.npy", np.full((128, 256, 1), np.nan, np.float32)),
            r"val/depth/0.npy: depth has NaN",
        ),
        (
            lambda r: np.save(r / "val" / "depth" / "0.npy", np.full((128, 256, 1), -0.1, np.float32)),
            r"val/depth/0.npy: depth has negative values",
        ),
        (
            lambda r: np.save(r / "val" / "depth" / "3.npy", np.array([{"a": 1}], dtype=object)),
            r"val/depth/3.npy: pickled .npy file",
        ),
    ],
)
def test_bad_data_is_one_clear_data_error(tiny_root, tmp_path, action, message):
    broken = corrupt(tiny_root, tmp_path, action)
    with pytest.raises(DataError, match=message):
        load_data(tiny_config(broken))


def test_missing_data_root_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(tiny_config(tmp_path / "nowhere"))


def test_an_unfinished_preparation_is_refused(tiny_root, tmp_path):
    broken = corrupt(tiny_root, tmp_path, lambda r: (r / "prepare.json").write_text('{"complete": false}'))
    with pytest.raises(DataError, match="preparation did not finish"):
        load_data(tiny_config(broken))
