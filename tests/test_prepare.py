"""mtan.data.prepare on tiny raw CityScapes trees in the official formats (32x64 raw -> 16x32)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from mtan.data import prepare as prep
from mtan.data.layout import check_prepared, count_split, read_index
from mtan.errors import DataError
from tests.bad_input import refused
from tests.raw_cityscapes import KNOWN_DISPARITIES, KNOWN_IDS, write_raw_tree

REPO = Path(__file__).resolve().parents[1]
SIZE = (16, 32)  # the design size of the raw tree: a 2x nearest resize samples each 2x2 block once
COUNTS = {"train": 3, "val": 2}
# docs/design.md: the 7 classes are these CityScapes categories, in this order; void -> -1.
CATEGORIES = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A raw tree, its preparation with one worker, and the frames it was built from."""
    base = tmp_path_factory.mktemp("prepared")
    frames = write_raw_tree(base / "raw", COUNTS)
    prep.prepare(base / "raw", base / "out", SIZE, workers=1)
    return base / "raw", base / "out", frames


def load(out: Path, split: str, folder: str, i: int) -> np.ndarray:
    return np.load(out / split / folder / f"{i}.npy", allow_pickle=False)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_counts_and_index(prepared: tuple[Path, Path, dict]) -> None:
    raw, out, frames = prepared
    for split, count in COUNTS.items():
        assert count_split(out, split) == count
        expected = sorted(source for source in frames if source.split("/")[1] == split)
        assert read_index(out, split) == expected
        assert all((raw / source).is_file() for source in expected)
    assert json.loads((out / "prepare.json").read_text())["complete"] is True
    check_prepared(out)


def test_dtypes_and_shapes(prepared: tuple[Path, Path, dict]) -> None:
    _, out, _ = prepared
    assert load(out, "val", "image", 1).shape == (*SIZE, 3)
    assert load(out, "val", "label_7", 1).shape == SIZE
    assert load(out, "val", "label_19", 1).shape == SIZE
    assert load(out, "val", "depth", 1).shape == (*SIZE, 1)
    for folder in ("image", "label_7", "label_19", "depth"):
        assert load(out, "train", folder, 0).dtype == np.float32


def test_known_label_ids_give_their_category_and_train_id(prepared: tuple[Path, Path, dict]) -> None:
    _, out, _ = prepared
    assert KNOWN_IDS == (0, 7, 11, 23, 24, 26, 9)  # unlabeled, road, building, sky, person, car, parking
    for split, count in COUNTS.items():
        for i in range(count):
            # categories: void, flat, construction, sky, human, vehicle, flat
            assert load(out, split, "label_7", i)[0, :7].tolist() == [-1, 0, 1, 4, 5, 6, 0]
            # train ids: 255, 0, 2, 10, 11, 13, 255 (parking is not one of the 19 classes)
            assert load(out, split, "label_19", i)[0, :7].tolist() == [-1, 0, 2, 10, 11, 13, -1]


def test_every_pixel_matches_the_cityscapesscripts_table(prepared: tuple[Path, Path, dict]) -> None:
    _, out, frames = prepared
    for split in COUNTS:
        for i, source in enumerate(read_index(out, split)):
            ids = frames[source].ids
            categories = np.vectorize(
                lambda v: CATEGORIES.index(c) if (c := id2label[v].category) in CATEGORIES else -1
            )
            train_ids = np.vectorize(lambda v: id2label[v].trainId if id2label[v].trainId != 255 else -1)
            np.testing.assert_array_equal(load(out, split, "label_7", i), categories(ids))
            np.testing.assert_array_equal(load(out, split, "label_19", i), train_ids(ids))


def test_depth_is_disparity_png_over_65535_and_invalid_stays_zero(prepared: tuple[Path, Path, dict]) -> None:
    _, out, frames = prepared
    assert KNOWN_DISPARITIES == (0, 1, 2561, 32257)
    depth = load(out, "train", "depth", 0)[:, :, 0]
    expected_row = np.array([0.0, 1 / 65535, 2561 / 65535, 32257 / 65535], dtype=np.float32)
    np.testing.assert_array_equal(depth[1, :4], expected_row)
    assert abs(float(depth[1, 3]) - 0.49221) < 1e-5  # the published set's maximum, about 0.4922
    for split in COUNTS:
        for i, source in enumerate(read_index(out, split)):
            depth = load(out, split, "depth", i)[:, :, 0]
            disparity = frames[source].disparity.astype(np.float64)
            np.testing.assert_array_equal(depth == 0, disparity == 0)
            np.testing.assert_allclose(depth, disparity / 65535, rtol=1e-6, atol=0)


def test_image_is_the_area_mean_over_255(prepared: tuple[Path, Path, dict]) -> None:
    _, out, frames = prepared
    for i, source in enumerate(read_index(out, "train")):
        raw = frames[source].image.astype(np.float64)
        block_means = raw.reshape(SIZE[0], 2, SIZE[1], 2, 3).mean(axis=(1, 3)) / 255
        np.testing.assert_allclose(load(out, "train", "image", i), block_means, atol=1e-6)


def test_nearest_indices_by_hand() -> None:
    assert prep.nearest_indices(4, 2).tolist() == [1, 3]
    assert prep.nearest_indices(3, 2).tolist() == [0, 2]
    assert prep.nearest_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert prep.nearest_indices(1024, 128)[:3].tolist() == [4, 12, 20]


def test_two_workers_write_the_same_bytes(prepared: tuple[Path, Path, dict], tmp_path: Path) -> None:
    raw, out, _ = prepared
    prep.prepare(raw, tmp_path / "out2", SIZE, workers=2)
    assert tree_bytes(tmp_path / "out2") == tree_bytes(out)


def test_rerun_skips_complete_items_and_redoes_missing_ones(tmp_path: Path) -> None:
    write_raw_tree(tmp_path / "raw", COUNTS)
    out = tmp_path / "out"
    prep.prepare(tmp_path / "raw", out, SIZE)
    before = tree_bytes(out)
    report = prep.prepare(tmp_path / "raw", out, SIZE)
    assert (report.converted, report.skipped) == (0, 5)
    (out / "val" / "label_19" / "1.npy").unlink()
    report = prep.prepare(tmp_path / "raw", out, SIZE)
    assert (report.converted, report.skipped) == (1, 4)
    assert tree_bytes(out) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes to stop the run at a known item")
def test_killed_run_completed_by_rerun_is_byte_identical(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw_tree(raw, COUNTS)
    clean = tmp_path / "clean"
    prep.prepare(raw, clean, SIZE)
    # The third train frame's disparity becomes a named pipe: opening it blocks, so the run writes
    # train items 0 and 1 completely and then waits there until it is killed.
    blocked = raw / "disparity/train/bochum/bochum_000001_000019_disparity.png"
    blocked.rename(blocked.with_suffix(".real"))
    os.mkfifo(blocked)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "mtan.data.prepare", "--raw", str(raw), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--size", "16x32", "--workers", "1"], cwd=REPO, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120  # a guard against hanging, not a speed requirement
        while not (out / "train/depth/1.npy").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "prepare never wrote train item 1"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "train/image/2.npy").exists() and not (out / "val/image/0.npy").exists()
    with pytest.raises(DataError, match="did not finish"):
        check_prepared(out)
    # A kill between an item's renames or during a write leaves these states too; the re-run repairs them.
    (out / "train/depth/1.npy").unlink()
    (out / "train/label_19/.5.npy.999999.tmp").write_bytes(b"partial")
    blocked.unlink()
    blocked.with_suffix(".real").rename(blocked)
    report = prep.prepare(raw, out, SIZE)
    assert (report.converted, report.skipped) == (4, 1)
    assert tree_bytes(out) == tree_bytes(clean)


def _raw_tree(tmp_path: Path) -> Path:
    write_raw_tree(tmp_path / "raw", {"train": 1, "val": 1})
    return tmp_path / "raw"


def _args(raw: Path, out: Path, *extra: str) -> list[str]:
    return ["--raw", str(raw), "--out", str(out), "--size", "16x32", "--workers", "1", *extra]


def test_bad_raw_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = refused(prep.main, _args(tmp_path / "nowhere", tmp_path / "out"), capsys)
    assert code == 2 and "--raw" in err and "nowhere" in err
    (tmp_path / "empty").mkdir()
    code, err = refused(prep.main, _args(tmp_path / "empty", tmp_path / "out"), capsys)
    assert code == 2 and "leftImg8bit/train: missing folder" in err


def _unknown_label_id(label: Path) -> None:
    ids = np.asarray(Image.open(label)).copy()
    ids[5, 5] = 200
    Image.fromarray(ids).save(label)


def _replace_by(array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(array).save(path)


LABEL = "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"


@pytest.mark.parametrize(
    ("file", "damage", "message"),
    [
        ("gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png", Path.unlink, "{path}: missing"),
        (
            "disparity/train/aachen/aachen_000000_000019_disparity.png",
            _replace_by(np.zeros((32, 64), np.uint8)),
            "16-bit",
        ),
        (LABEL, _unknown_label_id, "200"),
        (LABEL, _replace_by(np.zeros((16, 64), np.uint8)), "16x64"),  # image and label sizes differ
    ],
    ids=["missing counterpart", "8-bit disparity", "unknown label id", "size mismatch"],
)
def test_a_bad_raw_file_is_one_line_naming_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    file: str,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    raw = _raw_tree(tmp_path)
    damage(raw / file)
    code, line = refused(prep.main, _args(raw, tmp_path / "out"), capsys)
    assert code == 2 and str(raw / file) in line and message.format(path=raw / file) in line


@pytest.mark.parametrize(("flag", "value"), [("--size", "128"), ("--size", "0x256"), ("--workers", "0")])
def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    argv = ["--raw", str(tmp_path), "--out", str(tmp_path / "out"), flag, value]
    code, err = refused(prep.main, argv, capsys)
    assert code == 2 and flag in err


def test_out_folder_with_other_content_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw_tree(tmp_path)
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    code, err = refused(prep.main, _args(raw, out), capsys)
    assert code == 2 and "not empty" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train"]


def test_out_folder_prepared_at_another_size_or_from_other_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw_tree(tmp_path)
    out = tmp_path / "out"
    prep.prepare(raw, out, SIZE)
    before = tree_bytes(out)
    code, err = refused(prep.main, ["--raw", str(raw), "--out", str(out), "--size", "8x16"], capsys)
    assert code == 2 and "--size 8x16" in err
    write_raw_tree(raw, {"train": 2, "val": 1})
    code, err = refused(prep.main, _args(raw, out), capsys)
    assert code == 2 and "other source images" in err
    assert tree_bytes(out) == before
