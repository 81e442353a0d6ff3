"""mtan.data.verify on a set written by mtan.data.prepare, on a hand-written published-style set, and on
broken copies of them (one clear line and exit code 2 each)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label

from mtan.data.prepare import prepare
from mtan.data.verify import main, verify_set
from mtan.errors import run_cli
from tests.raw_cityscapes import write_raw_tree

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")  # docs/design.md order


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("verify")
    frames = write_raw_tree(base / "raw", {"train": 3, "val": 2})
    prepare(base / "raw", base / "out", (16, 32), workers=1)
    return base / "out", frames


@pytest.fixture
def copy(prepared: tuple[Path, dict], tmp_path: Path) -> Path:
    """A fresh copy of the prepared set that a test may break."""
    return Path(shutil.copytree(prepared[0], tmp_path / "set"))


def run_verify(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_rejected(root: Path, capsys: pytest.CaptureFixture[str], file: str, *words: str) -> None:
    code, out, err = run_verify([str(root)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert str(root / file) in err, err
    for word in words:
        assert word in err, err


def test_accepts_what_prepare_wrote(prepared: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = prepared
    code, printed, err = run_verify([str(out)], capsys)
    assert (code, err) == (0, "")
    assert printed.startswith(f"{out}: OK\n")
    assert "train: 3 samples, 16x32" in printed and "val: 2 samples, 16x32" in printed
    assert "vehicle" in printed and "bicycle" in printed


def test_summary_counts_match_the_raw_designs(prepared: tuple[Path, dict]) -> None:
    out, frames = prepared
    summaries = {s.split: s for s in verify_set(out)}
    for split, summary in summaries.items():
        split_frames = [frame for source, frame in frames.items() if source.split("/")[1] == split]
        ids = np.concatenate([frame.ids.ravel() for frame in split_frames])
        category = [CATEGORIES.index(c) if (c := id2label[v].category) in CATEGORIES else -1 for v in ids]
        train_id = [t if (t := id2label[v].trainId) != 255 else -1 for v in ids]
        np.testing.assert_array_equal(summary.histograms[7], np.bincount(np.add(category, 1), minlength=8))
        np.testing.assert_array_equal(summary.histograms[19], np.bincount(np.add(train_id, 1), minlength=20))
        disparity = np.concatenate([frame.disparity.ravel() for frame in split_frames])
        assert summary.invalid_fraction == pytest.approx(np.mean(disparity == 0))
        assert summary.depth_max == pytest.approx(disparity.max() / 65535)
        assert summary.depth_min == pytest.approx(disparity[disparity > 0].min() / 65535)
        assert summary.dtypes == {
            "image": "float32",
            "label_7": "float32",
            "label_19": "float32",
            "depth": "float32",
        }


def write_published_style_set(root: Path, label_dtype: type) -> None:
    """Two train and one val sample of 4x8, without prepare.json or index files, like the MTAN download."""
    for split, count in (("train", 2), ("val", 1)):
        for folder in ("image", "label_7", "label_19", "depth"):
            (root / split / folder).mkdir(parents=True)
        for i in range(count):
            label = np.full((4, 8), 3, dtype=label_dtype)
            label[0, 0] = -1
            np.save(root / split / "image" / f"{i}.npy", np.full((4, 8, 3), 0.5))
            np.save(root / split / "label_7" / f"{i}.npy", label)
            np.save(root / split / "label_19" / f"{i}.npy", label)
            np.save(root / split / "depth" / f"{i}.npy", np.full((4, 8, 1), 0.25, dtype=np.float32))


@pytest.mark.parametrize("label_dtype", [np.float64, np.int64])
def test_accepts_a_published_style_set(tmp_path: Path, label_dtype: type) -> None:
    write_published_style_set(tmp_path, label_dtype)
    train, val = verify_set(tmp_path)
    assert (train.count, val.count, train.size) == (2, 1, (4, 8))
    assert train.histograms[7].tolist() == [2, 0, 0, 0, 62, 0, 0, 0]  # 2 void pixels, 62 of class 3
    assert val.histograms[19][[0, 4]].tolist() == [1, 31]
    assert (train.invalid_fraction, train.depth_max) == (0.0, 0.25)


def test_rejects_a_missing_folder(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(copy / "val" / "depth")
    assert_rejected(copy, capsys, "val/depth", "missing folder")


def test_rejects_unequal_counts(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / "train" / "depth" / "2.npy").unlink()
    assert_rejected(copy, capsys, "train", "different numbers of files", "depth=2", "image=3")


def test_rejects_a_wrong_label_shape(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(copy / "train" / "label_7" / "1.npy", np.zeros((8, 32), dtype=np.float32))
    assert_rejected(copy, capsys, "train/label_7/1.npy", "shape (8, 32)", "16x32")


def test_rejects_an_image_size_that_differs_between_splits(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(copy / "val" / "image" / "0.npy", np.zeros((8, 16, 3), dtype=np.float32))
    assert_rejected(copy, capsys, "val/image/0.npy", "16x32x3")


@pytest.mark.parametrize(("folder", "value", "words"), [("label_7", 7, "-1..6"), ("label_19", -2, "-1..18")])
def test_rejects_a_label_out_of_range(
    copy: Path, capsys: pytest.CaptureFixture[str], folder: str, value: int, words: str
) -> None:
    label = np.load(copy / "val" / folder / "1.npy")
    label[3, 4] = value
    np.save(copy / "val" / folder / "1.npy", label)
    assert_rejected(copy, capsys, f"val/{folder}/1.npy", "outside", words)


def test_rejects_a_fractional_label(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label = np.load(copy / "train" / "label_19" / "0.npy")
    label[0, 0] = 0.5
    np.save(copy / "train" / "label_19" / "0.npy", label)
    assert_rejected(copy, capsys, "train/label_19/0.npy", "not integers")


def test_rejects_nan_depth(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    depth = np.load(copy / "train" / "depth" / "2.npy")
    depth[5, 5, 0] = np.nan
    np.save(copy / "train" / "depth" / "2.npy", depth)
    assert_rejected(copy, capsys, "train/depth/2.npy", "NaN")


def test_rejects_depth_in_metres(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(copy / "val" / "depth" / "0.npy", np.full((16, 32, 1), 30.0, dtype=np.float32))
    assert_rejected(copy, capsys, "val/depth/0.npy", "--max-depth 1", "inverse depth")


def test_rejects_a_split_without_valid_depth(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(2):
        np.save(copy / "val" / "depth" / f"{i}.npy", np.zeros((16, 32, 1), dtype=np.float32))
    assert_rejected(copy, capsys, "val/depth", "every depth pixel is 0")


def test_rejects_a_pickled_npy(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = np.empty((16, 32, 3), dtype=object)
    image[...] = 0.5
    np.save(copy / "train" / "image" / "1.npy", image, allow_pickle=True)
    assert_rejected(copy, capsys, "train/image/1.npy", "pickled")


def test_rejects_mixed_dtypes_in_a_folder(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label = np.load(copy / "val" / "label_7" / "1.npy")
    np.save(copy / "val" / "label_7" / "1.npy", label.astype(np.int8))
    assert_rejected(copy, capsys, "val/label_7/1.npy", "dtype int8", "float32")


def test_rejects_an_index_of_another_length(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = copy / "train" / "index.csv"
    index.write_text("".join(index.read_text().splitlines(keepends=True)[:-1]))
    assert_rejected(copy, capsys, "train/index.csv", "2 rows", "3 files")


def test_rejects_an_unfinished_preparation(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = json.loads((copy / "prepare.json").read_text())
    (copy / "prepare.json").write_text(json.dumps({**state, "complete": False}))
    assert_rejected(copy, capsys, "prepare.json", "did not finish")


def test_rejects_a_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_rejected(tmp_path / "nowhere", capsys, "", "not a folder")


def test_command_line_exit_code_and_single_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    missing = tmp_path / "set"
    (missing / "train").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "mtan.data.verify", str(missing)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {missing / 'train' / 'image'}: missing folder\n"
