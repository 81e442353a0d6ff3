"""Build the MTAN CityScapes set (128x256, 7/19-class labels, inverse depth) from the official downloads.

``python -m mtan.data.prepare --raw CITYSCAPES_ROOT --out DIR [--size 128x256] [--workers N]`` reads
``leftImg8bit/``, ``gtFine/`` (``*_gtFine_labelIds.png``) and ``disparity/`` for the train and val
splits and writes ``DIR/{train,val}/{image,label_7,label_19,depth}/{i}.npy``, ``DIR/{split}/index.csv``
(i -> source image) and ``DIR/prepare.json``. docs/cityscapes.md gives the encodings and the evidence
for the depth scaling. Every file is written to a temporary name and renamed; ``prepare.json`` says
``"complete": false`` until the last item is written, and a re-run skips the complete items.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mtan.cli import command_parser
from mtan.config import parse_size
from mtan.data.cityscapes_labels import UNKNOWN, label_lookup
from mtan.data.layout import (
    DEPTH,
    FOLDERS,
    IMAGE,
    INDEX_FILE,
    LABEL_FOLDERS,
    PREPARE_FILE,
    SPLITS,
    read_index,
)
from mtan.errors import ConfigError, DataError, run_cli

IMAGE_DIR, LABEL_DIR, DISPARITY_DIR = "leftImg8bit", "gtFine", "disparity"
IMAGE_SUFFIX, LABEL_SUFFIX, DISPARITY_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png", "_disparity.png"
DISPARITY_SCALE = 65535.0  # depth = p / 65535 for a disparity PNG value p > 0 (docs/cityscapes.md)
FORMAT_VERSION = 1
ENCODING = {
    "image": "float32 HxWx3, RGB / 255, area (box) resize",
    "label_7": "float32 HxW, CityScapes category (flat..vehicle) 0..6, void -1, nearest resize",
    "label_19": "float32 HxW, CityScapes train id 0..18, 255 -> -1, nearest resize",
    "depth": "float32 HxWx1, disparity PNG value p / 65535 for p > 0, 0 for p = 0 (invalid), nearest resize",
}
_LOCK_FILE = ".prepare.lock"
_TEMP_FILE = re.compile(r"^\..+\.\d+\.tmp$")
_LOOKUP = {classes: label_lookup(classes) for classes in LABEL_FOLDERS}


@dataclass(frozen=True)
class Item:
    """One CityScapes frame: its three source files and its index in the output split."""

    split: str
    index: int
    source: str  # the image path relative to the raw root, e.g. leftImg8bit/train/aachen/..._leftImg8bit.png
    image: Path
    label: Path
    disparity: Path

    def output(self, out: Path, folder: str) -> Path:
        """The .npy file of this item in `folder` under the output root `out`."""
        return out / self.split / folder / f"{self.index}.npy"


def find_items(raw: Path) -> dict[str, list[Item]]:
    """List each split's frames in the raw CityScapes tree, sorted by city and name; check counterparts."""
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(f"--raw {raw}: not a folder")
    items: dict[str, list[Item]] = {}
    for split in SPLITS:
        image_dir = raw / IMAGE_DIR / split
        if not image_dir.is_dir():
            raise DataError(
                f"{image_dir}: missing folder (--raw must be the CityScapes root holding "
                f"{IMAGE_DIR}/, {LABEL_DIR}/ and {DISPARITY_DIR}/)"
            )
        images = sorted(
            image_dir.glob(f"*/*{IMAGE_SUFFIX}"), key=lambda p: p.relative_to(image_dir).as_posix()
        )
        if not images:
            raise DataError(f"{image_dir}: no <city>/*{IMAGE_SUFFIX} images")
        items[split] = []
        for index, image in enumerate(images):
            city, stem = image.parent.name, image.name[: -len(IMAGE_SUFFIX)]
            label = raw / LABEL_DIR / split / city / f"{stem}{LABEL_SUFFIX}"
            disparity = raw / DISPARITY_DIR / split / city / f"{stem}{DISPARITY_SUFFIX}"
            for path in (label, disparity):
                if not path.exists():
                    raise DataError(f"{path}: missing (the counterpart of {image})")
            source = image.relative_to(raw).as_posix()
            items[split].append(Item(split, index, source, image, label, disparity))
    return items


def nearest_indices(source: int, target: int) -> np.ndarray:
    """Source positions sampled by a nearest-neighbour resize from `source` to `target` samples.

    Output sample i sits at the centre (i + 0.5) * source / target; exact integer arithmetic.
    """
    return (np.arange(target, dtype=np.int64) * 2 + 1) * source // (2 * target)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes of `array` to `size` = (height, width)."""
    rows = nearest_indices(array.shape[0], size[0])
    cols = nearest_indices(array.shape[1], size[1])
    return array[rows[:, None], cols[None, :]]


def _open_png(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot read the {what} PNG ({error})") from None
    return image


def convert_image(image: Image.Image, path: Path, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit RGB image -> float32 HxWx3 in [0, 1], area (box filter) resized to `size`."""
    if image.mode != "RGB":
        raise DataError(f"{path}: image mode {image.mode}, expected 8-bit RGB")
    height, width = size
    bands = [
        np.asarray(band.convert("F").resize((width, height), Image.Resampling.BOX)) for band in image.split()
    ]
    return np.clip(np.stack(bands, axis=-1) / np.float32(255.0), 0.0, 1.0).astype(np.float32)


def convert_label_ids(ids: np.ndarray, path: Path, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """CityScapes label ids HxW -> {7: categories, 19: train ids}, float32 with -1 void, nearest resized."""
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(
            f"{path}: labelIds PNG must be single-channel integer, got shape {ids.shape} {ids.dtype}"
        )
    if ids.min() < 0 or ids.max() > 255:
        raise DataError(f"{path}: label ids {ids.min()}..{ids.max()} outside 0..255")
    unknown = _LOOKUP[7][ids] == UNKNOWN
    if unknown.any():
        listing = ", ".join(str(v) for v in np.unique(ids[unknown])[:5])
        raise DataError(f"{path}: label ids not in the CityScapes labels table: {listing}")
    small = resize_nearest(ids, size)
    return {classes: table[small].astype(np.float32) for classes, table in _LOOKUP.items()}


def disparity_to_depth(disparity: np.ndarray) -> np.ndarray:
    """Raw disparity PNG values p -> inverse depth p / 65535 for p > 0 and 0 for p = 0, as float32."""
    values = disparity.astype(np.float32)
    return np.where(disparity > 0, values / np.float32(DISPARITY_SCALE), np.float32(0.0)).astype(np.float32)


def convert_item(item: Item, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Read one frame's three PNGs and return the four MTAN arrays, keyed by output folder."""
    image = _open_png(item.image, "image")
    label = _open_png(item.label, "labelIds")
    disparity = _open_png(item.disparity, "disparity")
    for path, other in ((item.label, label), (item.disparity, disparity)):
        if other.size != image.size:
            raise DataError(
                f"{path}: size {other.size[1]}x{other.size[0]} differs from its image's "
                f"{image.size[1]}x{image.size[0]}"
            )
    if disparity.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(f"{item.disparity}: mode {disparity.mode}, expected a 16-bit grayscale disparity PNG")
    raw_disparity = np.asarray(disparity)
    if raw_disparity.min() < 0 or raw_disparity.max() > 65535:
        raise DataError(f"{item.disparity}: values outside 0..65535")
    labels = convert_label_ids(np.asarray(label), item.label, size)
    return {
        IMAGE: convert_image(image, item.image, size),
        LABEL_FOLDERS[7]: labels[7],
        LABEL_FOLDERS[19]: labels[19],
        DEPTH: disparity_to_depth(resize_nearest(raw_disparity, size))[:, :, None],
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file next to `path`, flush it to disk, then rename it to `path`."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save `array` as a non-pickled .npy file, atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_atomic(path, buffer.getvalue())


def prepare_item(job: tuple[Item, Path, tuple[int, int]]) -> None:
    """Convert one frame and write its four files (a worker's task)."""
    item, out, size = job
    for folder, array in convert_item(item, size).items():
        save_npy(item.output(out, folder), array)


def item_complete(item: Item, out: Path) -> bool:
    """Whether all four files of `item` exist (each is renamed into place only once fully written)."""
    return all(item.output(out, folder).exists() for folder in FOLDERS)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out` so two preparations never write the same folder at once."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): run unlocked
        yield
        return
    path = out / _LOCK_FILE
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataError(f"--out {out}: another mtan.data.prepare is writing this folder") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still ours: removed before the lock is released


def _is_own_scratch(name: str) -> bool:
    return name == _LOCK_FILE or bool(_TEMP_FILE.match(name))


def _previous_run(out: Path, state: dict) -> tuple[object, dict[str, list[str] | None] | None]:
    """The size and the sources per split of an earlier preparation in `out`."""
    if state.get("complete") is True:
        return state.get("size"), {split: read_index(out, split) for split in SPLITS}
    return state.get("size"), state.get("sources")


def _check_out(out: Path, items: dict[str, list[Item]], size: tuple[int, int]) -> None:
    """Accept an empty `out` or one holding an earlier preparation of the same sources and size."""
    state_path = out / PREPARE_FILE
    if not state_path.exists():
        others = sorted(p.name for p in out.iterdir() if not _is_own_scratch(p.name))
        if others:
            raise DataError(
                f"--out {out}: folder is not empty ({others[0]}, ...) and holds no {PREPARE_FILE}; "
                "choose a new or empty folder"
            )
        return
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        previous_size, previous = _previous_run(out, state)
    except (OSError, ValueError, AttributeError) as error:
        raise DataError(f"{state_path}: unreadable ({error}); choose a new --out folder") from None
    if previous_size != list(size):
        raise DataError(
            f"--out {out}: holds a preparation at size {previous_size}, this run asks for --size "
            f"{size[0]}x{size[1]}; choose a new --out folder"
        )
    if previous != {split: [item.source for item in split_items] for split, split_items in items.items()}:
        raise DataError(
            f"--out {out}: holds a preparation of other source images than --raw lists now; "
            "choose a new --out folder"
        )


def _remove_stale_temp_files(out: Path) -> None:
    folders = [out, *(out / split for split in SPLITS), *(out / s / f for s in SPLITS for f in FOLDERS)]
    for folder in folders:
        if folder.is_dir():
            for path in folder.iterdir():
                if _TEMP_FILE.match(path.name):
                    path.unlink(missing_ok=True)


def _index_csv(split_items: list[Item]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", "source"])
    writer.writerows([item.index, item.source] for item in split_items)
    return text.getvalue().encode("utf-8")


def _state(items: dict[str, list[Item]], size: tuple[int, int], complete: bool) -> bytes:
    state: dict[str, object] = {"format": FORMAT_VERSION, "complete": complete, "size": list(size)}
    if complete:
        state["counts"] = {split: len(split_items) for split, split_items in items.items()}
        state["encoding"] = ENCODING
    else:
        state["sources"] = {
            split: [item.source for item in split_items] for split, split_items in items.items()
        }
    return (json.dumps(state, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True)
class PrepareReport:
    """What one run did: frames converted now, frames found complete, and the seconds converting took."""

    converted: int
    skipped: int
    seconds: float


def default_workers() -> int:
    """The number of CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def prepare(raw: Path, out: Path, size: tuple[int, int] = (128, 256), workers: int = 1) -> PrepareReport:
    """Convert the train and val splits of the raw tree `raw` into the MTAN layout under `out`."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    out = Path(out)
    items = find_items(Path(raw))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"--out {out}: cannot create the folder ({error})") from None
    with _locked(out):
        _check_out(out, items, size)
        _remove_stale_temp_files(out)
        for split in SPLITS:
            for folder in FOLDERS:
                (out / split / folder).mkdir(parents=True, exist_ok=True)
        write_atomic(out / PREPARE_FILE, _state(items, size, complete=False))
        every = [item for split in SPLITS for item in items[split]]
        todo = [item for item in every if not item_complete(item, out)]
        jobs = [(item, out, size) for item in todo]
        start = time.perf_counter()
        progress = {"unit": "img", "desc": "prepare", "disable": None}  # None: a bar only on a terminal
        with tqdm(total=len(every), initial=len(every) - len(todo), **progress) as bar:
            if workers == 1 or len(jobs) <= 1:
                for job in jobs:
                    prepare_item(job)
                    bar.update()
            else:
                # spawn, not fork: a forked child of a process with threads (Ray, torch) can deadlock
                with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
                    for _ in pool.imap_unordered(prepare_item, jobs, chunksize=1):
                        bar.update()
        seconds = time.perf_counter() - start
        for split in SPLITS:
            write_atomic(out / split / INDEX_FILE, _index_csv(items[split]))
        write_atomic(out / PREPARE_FILE, _state(items, size, complete=True))
    return PrepareReport(converted=len(todo), skipped=len(every) - len(todo), seconds=seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: prepare the MTAN CityScapes set; see the module docstring."""
    parser = command_parser(
        "mtan.data.prepare",
        "Build the MTAN CityScapes set (image, label_7, label_19, depth .npy) from the official "
        "leftImg8bit, gtFine and disparity downloads.",
    )
    parser.add_argument(
        "--raw", type=Path, required=True, help="CityScapes root holding leftImg8bit/, gtFine/, disparity/"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (new, empty, or an unfinished run's)"
    )
    parser.add_argument("--size", default="128x256", help="output HEIGHTxWIDTH (default 128x256)")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="worker processes (default: cores)"
    )
    args = parser.parse_args(argv)
    report = prepare(args.raw, args.out, parse_size(args.size), args.workers)
    rate = report.converted / report.seconds if report.seconds > 0 else float("nan")
    print(
        f"{args.out}: converted {report.converted} images ({report.skipped} already complete) "
        f"in {report.seconds:.1f} s, {rate:.2f} images/s"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
