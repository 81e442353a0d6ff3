"""Check any MTAN-layout CityScapes set (the published download or ours) and print a summary.

``python -m mtan.data.verify DIR [--max-depth 1.0]`` checks, per split: the folders and equal file
counts, that every array loads without pickle, one image size throughout, the dtypes (float image
in [0, 1], integral labels in -1..n-1, finite float depth >= 0 and <= --max-depth), that some depth
is valid, an unfinished ``prepare.json`` and the index length. It stops at the first problem with
one line naming the file; on success it prints counts, sizes, dtypes, depth range, invalid fraction
and the class histograms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mtan.cli import command_parser
from mtan.data.cityscapes_labels import CLASS_NAMES
from mtan.data.layout import (
    DEPTH,
    INDEX_FILE,
    LABEL_FOLDERS,
    SPLITS,
    check_prepared,
    check_some_depth,
    count_split,
    read_index,
    read_sample,
)
from mtan.errors import ConfigError, DataError, run_cli

DEFAULT_MAX_DEPTH = 1.0  # inverse depth p / 65535 <= 1; the published set's maximum is about 0.49


@dataclass(frozen=True)
class SplitSummary:
    """What `verify_set` found in one split."""

    split: str
    count: int
    size: tuple[int, int]
    dtypes: dict[str, str]
    histograms: dict[int, np.ndarray]  # classes -> pixel counts, entry 0 = void (-1), entry c + 1 = class c
    depth_min: float  # over valid (> 0) pixels
    depth_max: float
    invalid_fraction: float  # of all depth pixels, 0 = invalid


def _check_dtype(path: Path, dtype: np.dtype, expected: np.dtype) -> None:
    if dtype != expected:
        raise DataError(f"{path}: dtype {dtype} differs from {expected} of 0.npy in the same folder")


def verify_split(root: Path, split: str, size: tuple[int, int] | None, max_depth: float) -> SplitSummary:
    """Check every file of `root/split`; `size` = the (height, width) every array must have, or None."""
    count = count_split(root, split)
    index = read_index(root, split)
    if index is not None and len(index) != count:
        raise DataError(f"{root / split / INDEX_FILE}: {len(index)} rows, but the folders hold {count} files")
    histograms = {classes: np.zeros(classes + 1, dtype=np.int64) for classes in LABEL_FOLDERS}
    dtypes: dict[str, np.dtype] = {}
    depth_min, depth_max, invalid, total = np.inf, 0.0, 0, 0
    for i in tqdm(range(count), desc=f"verify {split}", unit="img", leave=False, disable=None):
        sample = read_sample(root, split, i, LABEL_FOLDERS, size)
        size = sample.image.shape[:2]
        for classes, label in sample.labels.items():
            histograms[classes] += np.bincount(label.ravel().astype(np.int64) + 1, minlength=classes + 1)
        depth = sample.depth
        if depth.max() > max_depth:
            raise DataError(
                f"{root / split / DEPTH}/{i}.npy: depth up to {depth.max():g} > --max-depth {max_depth:g}; "
                "expected inverse depth (disparity PNG / 65535, max about 0.49), not metres or pixels"
            )
        valid = depth[depth > 0]
        if valid.size:
            depth_min, depth_max = min(depth_min, float(valid.min())), max(depth_max, float(valid.max()))
        invalid += depth.size - valid.size
        total += depth.size
        for path, dtype in sample.stored_dtypes.items():
            _check_dtype(path, dtype, dtypes.setdefault(path.parent.name, dtype))
    check_some_depth(root / split / DEPTH, total - invalid)
    return SplitSummary(
        split=split,
        count=count,
        size=size,
        dtypes={folder: str(dtype) for folder, dtype in dtypes.items()},
        histograms=histograms,
        depth_min=depth_min,
        depth_max=depth_max,
        invalid_fraction=invalid / total,
    )


def verify_set(root: Path, max_depth: float = DEFAULT_MAX_DEPTH) -> list[SplitSummary]:
    """Check the set under `root` (both splits, one image size); raise `DataError` on the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    check_prepared(root)
    summaries: list[SplitSummary] = []
    for split in SPLITS:
        summaries.append(verify_split(root, split, summaries[0].size if summaries else None, max_depth))
    return summaries


def format_summary(root: Path, summaries: list[SplitSummary]) -> str:
    """The human-readable summary: counts, sizes, dtypes, depth and the class histograms (% of pixels)."""
    lines = [f"{root}: OK"]
    for s in summaries:
        dtypes = ", ".join(f"{folder} {dtype}" for folder, dtype in s.dtypes.items())
        lines.append(f"  {s.split}: {s.count} samples, {s.size[0]}x{s.size[1]}; {dtypes}")
        lines.append(
            f"    depth (valid pixels) {s.depth_min:.4g}..{s.depth_max:.4g}, "
            f"invalid fraction {s.invalid_fraction:.3f}"
        )
    for classes in LABEL_FOLDERS:
        lines.append(
            f"  {classes}-class histogram (% of pixels): " + "  ".join(f"{s.split:>6}" for s in summaries)
        )
        names = ("void", *CLASS_NAMES[classes])
        for k, name in enumerate(names):
            shares = "  ".join(
                f"{100 * s.histograms[classes][k] / s.histograms[classes].sum():6.2f}" for s in summaries
            )
            lines.append(f"    {k - 1:>3} {name:<14} {shares}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: verify an MTAN-layout set; see the module docstring."""
    parser = command_parser("mtan.data.verify", __doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the set's root, holding train/ and val/")
    parser.add_argument(
        "--max-depth",
        type=float,
        default=DEFAULT_MAX_DEPTH,
        help="largest accepted depth value (default 1.0)",
    )
    args = parser.parse_args(argv)
    if not args.max_depth > 0:
        raise ConfigError(f"--max-depth must be positive, got {args.max_depth}")
    print(format_summary(args.root, verify_set(args.root, args.max_depth)))
    return 0


if __name__ == "__main__":
    run_cli(main)
