"""The MTAN-preprocessed CityScapes layout and the checks every reader of it shares.

Layout (docs/design.md, "Data"): ``root/{train,val}/{image,label_7,label_19,depth}/{i}.npy`` with
``i = 0..n-1``; image HxWx3 float in [0, 1]; labels HxW with -1 = void; depth HxWx1 inverse depth,
0 = invalid. The loader, ``mtan.data.verify`` and ``mtan.data.prepare`` all go through these checks.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtan.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val")
IMAGE, DEPTH = "image", "depth"
LABEL_FOLDERS: dict[int, str] = {7: "label_7", 19: "label_19"}
FOLDERS: tuple[str, ...] = (IMAGE, LABEL_FOLDERS[7], LABEL_FOLDERS[19], DEPTH)
_INDEX_FILE = re.compile(r"^(\d+)\.npy$")


def label_folder(num_classes: int) -> str:
    """The folder name of the `num_classes`-class labels (7 or 19)."""
    if num_classes not in LABEL_FOLDERS:
        raise DataError(f"--labels must be one of {sorted(LABEL_FOLDERS)}, got {num_classes}")
    return LABEL_FOLDERS[num_classes]


def count_split(root: Path, split: str, folders: tuple[str, ...] = FOLDERS) -> int:
    """Check that `root/split/<folder>/` exist and hold the same files 0..n-1.npy; return n."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: missing split folder (expected the MTAN layout root/{split}/...)")
    counts: dict[str, int] = {}
    for folder in folders:
        path = split_dir / folder
        if not path.is_dir():
            raise DataError(f"{path}: missing folder")
        indices = sorted(int(m.group(1)) for p in path.iterdir() if (m := _INDEX_FILE.match(p.name)))
        if indices != list(range(len(indices))):
            missing = sorted(set(range(max(indices, default=-1) + 1)) - set(indices))
            raise DataError(f"{path}: files are not numbered 0..n-1 (missing {missing[0]}.npy)")
        counts[folder] = len(indices)
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise DataError(f"{split_dir}: folders hold different numbers of files ({listing})")
    n = next(iter(counts.values()))
    if n == 0:
        raise DataError(f"{split_dir}: no .npy files")
    return n


def load_array(path: Path) -> np.ndarray:
    """Load one .npy file without pickle; a pickled or unreadable file is a `DataError`."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise DataError(f"{path}: pickled .npy file (object arrays are not accepted)") from None
        raise DataError(f"{path}: unreadable .npy file ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: unreadable .npy file ({error})") from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever the file's name
        array.close()
        raise DataError(f"{path}: an .npz archive, not a .npy array")
    return array


def check_image(path: Path, image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Check an HxWx3 float image with values in [0, 1]; return it."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{path}: image shape {image.shape}, expected HxWx3")
    if image.size == 0:
        raise DataError(f"{path}: image shape {image.shape} is empty")
    if shape is not None and image.shape[:2] != shape:
        raise DataError(f"{path}: image shape {image.shape}, expected {shape[0]}x{shape[1]}x3")
    if not np.issubdtype(image.dtype, np.floating):
        raise DataError(f"{path}: image dtype {image.dtype}, expected float in [0, 1]")
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        raise DataError(f"{path}: image values outside [0, 1] or not finite")
    return image


def check_label(path: Path, label: np.ndarray, num_classes: int, shape: tuple[int, int]) -> np.ndarray:
    """Check an HxW label map with integer values in -1..num_classes-1; return it as int8."""
    if label.shape != shape:
        raise DataError(f"{path}: label shape {label.shape}, expected {shape[0]}x{shape[1]}")
    if not (np.issubdtype(label.dtype, np.integer) or np.issubdtype(label.dtype, np.floating)):
        raise DataError(f"{path}: label dtype {label.dtype}, expected integer or integral float")
    if np.issubdtype(label.dtype, np.floating) and (
        not np.isfinite(label).all() or (label != np.round(label)).any()
    ):
        raise DataError(f"{path}: label values are not integers")
    low, high = label.min(), label.max()
    if low < -1 or high > num_classes - 1:
        raise DataError(f"{path}: label values {low:g}..{high:g} outside -1..{num_classes - 1}")
    return label.astype(np.int8)


def check_depth(path: Path, depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Check an HxWx1 (or HxW) inverse-depth map, finite and >= 0 (0 = invalid); return it HxW float32."""
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.shape != shape:
        raise DataError(f"{path}: depth shape {depth.shape}, expected {shape[0]}x{shape[1]}x1")
    if not np.issubdtype(depth.dtype, np.floating):
        raise DataError(f"{path}: depth dtype {depth.dtype}, expected float")
    if not np.isfinite(depth).all():
        raise DataError(f"{path}: depth has NaN or infinite values")
    if depth.min() < 0:
        raise DataError(f"{path}: depth has negative values (min {depth.min():g}); 0 marks invalid pixels")
    return depth.astype(np.float32)


@dataclass(frozen=True)
class Sample:
    """One checked sample: the image (HxWx3 float in [0, 1]), labels per number of classes (HxW int8),
    depth (HxW float32), and each file read with the dtype it was stored in."""

    image: np.ndarray
    labels: dict[int, np.ndarray]
    depth: np.ndarray
    stored_dtypes: dict[Path, np.dtype]


def read_sample(
    root: Path, split: str, i: int, label_classes: Iterable[int], shape: tuple[int, int] | None
) -> Sample:
    """Load and check sample `i` of `root/split`: the image (of `shape` if given), the labels of each of
    `label_classes` (7 and/or 19) and the depth, at the image's size; the first bad file is a `DataError`."""
    stored: dict[Path, np.ndarray] = {}

    def load(folder: str) -> tuple[Path, np.ndarray]:
        path = Path(root) / split / folder / f"{i}.npy"
        stored[path] = load_array(path)
        return path, stored[path]

    image = check_image(*load(IMAGE), shape)
    size = image.shape[:2]
    labels = {classes: check_label(*load(label_folder(classes)), classes, size) for classes in label_classes}
    depth = check_depth(*load(DEPTH), size)
    return Sample(image, labels, depth, {path: array.dtype for path, array in stored.items()})


def check_some_depth(folder: Path, valid_pixels: int) -> None:
    """Refuse a split with no valid (> 0) depth pixel: there is no depth to learn or score."""
    if valid_pixels == 0:
        raise DataError(f"{folder}: every depth pixel is 0 (invalid); no depth to learn from")


PREPARE_FILE = "prepare.json"  # written by mtan.data.prepare: {"complete": false} until it finished
INDEX_FILE = "index.csv"  # per split, written by mtan.data.prepare: columns index,source


def check_prepared(root: Path) -> None:
    """Reject a set whose `prepare.json` says that `mtan.data.prepare` has not finished writing it.

    A set without `prepare.json` (e.g. the published MTAN download) passes.
    """
    path = Path(root) / PREPARE_FILE
    if not path.exists():
        return
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error})") from None
    if not isinstance(state, dict) or state.get("complete") is not True:
        raise DataError(
            f"{path}: the preparation did not finish; run python -m mtan.data.prepare again with the same "
            "--raw and --out to complete it"
        )


def read_index(root: Path, split: str) -> list[str] | None:
    """The source image of each index i from `root/split/index.csv`, or None when there is no index file."""
    path = Path(root) / split / INDEX_FILE
    if not path.exists():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: unreadable ({error})") from None
    if not rows or rows[0] != ["index", "source"]:
        raise DataError(f"{path}: expected the header 'index,source'")
    sources = []
    for number, row in enumerate(rows[1:]):
        if len(row) != 2 or row[0] != str(number):
            raise DataError(f"{path}: row {number + 2} is not '{number},<source image>'")
        sources.append(row[1])
    return sources
