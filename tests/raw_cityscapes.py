"""Tiny raw CityScapes trees in the official formats, for the prepare/verify tests and the speed check.

Each frame is built from a small "design" (label ids and disparity values, one per block of
``block x block`` raw pixels), so a nearest-neighbour resize by a factor of ``block`` gives the
design back whatever pixel inside the block it samples. The image is noisy per pixel, so an area
resize can be checked against block means.

As a command (the speed check in docs/cityscapes.md):
``python tests/raw_cityscapes.py DIR --train 6 --val 2 --size 1024x2048 --block 8``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CITIES: dict[str, tuple[str, ...]] = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}
# Written into the first design row of every frame: unlabeled, road, building, sky, person, car, parking.
KNOWN_IDS: tuple[int, ...] = (0, 7, 11, 23, 24, 26, 9)
# Written into the second design row: invalid, zero disparity, 10 px ((p - 1) / 256), the set's maximum.
KNOWN_DISPARITIES: tuple[int, ...] = (0, 1, 2561, 32257)


@dataclass(frozen=True)
class RawFrame:
    """One frame of the tree: its design (label ids, disparity per block) and its full-size image."""

    ids: np.ndarray  # uint8, design size
    disparity: np.ndarray  # uint16, design size
    image: np.ndarray  # uint8 HxWx3, raw size


def frame_stems(split: str, count: int) -> list[tuple[str, str]]:
    """(city, stem) of `count` frames of `split`, spread over the split's cities."""
    cities = CITIES[split]
    return [(cities[k % len(cities)], f"{cities[k % len(cities)]}_{k:06d}_000019") for k in range(count)]


def make_frame(seed: int, design: tuple[int, int], block: int) -> RawFrame:
    """A deterministic frame whose design has the known ids in row 0 and known disparities in row 1."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 34, size=design, dtype=np.uint8)
    ids[0, : len(KNOWN_IDS)] = KNOWN_IDS
    disparity = rng.integers(1, 32258, size=design).astype(np.uint16)
    disparity[rng.random(design) < 0.25] = 0
    disparity[1, : len(KNOWN_DISPARITIES)] = KNOWN_DISPARITIES
    height, width = design[0] * block, design[1] * block
    ramp = np.linspace(0, 180, width)[None, :, None] + np.linspace(0, 60, height)[:, None, None]
    noise = rng.integers(-15, 16, size=(height, width, 3))
    image = np.clip(ramp + noise + np.array([0, 20, 40]), 0, 255).astype(np.uint8)
    return RawFrame(ids=ids, disparity=disparity, image=image)


def write_raw_tree(
    root: Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (32, 64), block: int = 2
) -> dict[str, RawFrame]:
    """Write leftImg8bit, gtFine labelIds and disparity PNGs under `root`; return frames by image path."""
    counts = counts or {"train": 3, "val": 2}
    design = (size[0] // block, size[1] // block)
    frames: dict[str, RawFrame] = {}
    seed = 0
    for split, count in counts.items():
        for city, stem in frame_stems(split, count):
            frame = make_frame(seed, design, block)
            seed += 1
            paths = {
                "image": root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                "ids": root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
                "disparity": root / "disparity" / split / city / f"{stem}_disparity.png",
            }
            for path in paths.values():
                path.parent.mkdir(parents=True, exist_ok=True)
            grow = np.ones((block, block), dtype=np.uint8)
            Image.fromarray(frame.image).save(paths["image"])  # mode RGB, 8 bit
            Image.fromarray(np.kron(frame.ids, grow)).save(paths["ids"])  # mode L, 8 bit
            Image.fromarray(np.kron(frame.disparity, grow.astype(np.uint16))).save(paths["disparity"])  # I;16
            frames[paths["image"].relative_to(root).as_posix()] = frame
    return frames


def main(argv: Sequence[str] | None = None) -> int:
    """Write a synthetic raw tree (for measuring the preparation speed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=6)
    parser.add_argument("--val", type=int, default=2)
    parser.add_argument("--size", default="1024x2048", help="raw HEIGHTxWIDTH")
    parser.add_argument("--block", type=int, default=8, help="raw pixels per design cell (side)")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    write_raw_tree(args.root, {"train": args.train, "val": args.val}, (height, width), args.block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
