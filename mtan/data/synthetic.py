"""The default data set: deterministic synthetic street scenes in the MTAN CityScapes layout.

Each 128x256 scene has a horizon; sky above it (inverse depth 0 = invalid, as in CityScapes, where the
stereo matcher finds no disparity in the sky); a ground plane below it whose inverse depth grows linearly
towards the camera; and objects of the seven CityScapes categories standing on the ground, each at the
one inverse depth of the ground row it stands on and sized in proportion to it (nearer is bigger):
buildings along the horizon, trees, vehicles, people and poles with signs. The ego vehicle's bonnet at
the bottom is void (label -1, depth 0) and a few stereo drop-outs have depth 0. Colours vary per object,
with textures, a global lighting change and pixel noise. Its numbers are not CityScapes numbers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from mtan.data.layout import DEPTH, FOLDERS, IMAGE, LABEL_FOLDERS, SPLITS

HEIGHT, WIDTH = 128, 256
SPLIT_SIZES: dict[str, int] = {"train": 256, "val": 64}
VERSION = 1
MAX_INVERSE_DEPTH = 0.45  # about the maximum of the MTAN CityScapes depth maps (docs/design.md)

FLAT, CONSTRUCTION, OBJECT, NATURE, SKY, HUMAN, VEHICLE = range(7)
# One CityScapes train id (19 classes) per category, for the label_19 maps.
TRAIN_ID = {FLAT: 0, CONSTRUCTION: 2, OBJECT: 5, NATURE: 8, SKY: 10, HUMAN: 11, VEHICLE: 13}


class Canvas:
    """Image, 7-class labels and inverse depth of one scene, painted back to front."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        self.label = np.zeros((HEIGHT, WIDTH), np.int8)
        self.depth = np.zeros((HEIGHT, WIDTH), np.float32)

    def paint(
        self,
        rows: slice,
        cols: slice,
        category: int,
        colour: np.ndarray,
        depth: float,
        mask: np.ndarray | None = None,
        texture: float = 0.05,
    ) -> None:
        """Paint a rectangle (or the `mask` inside it) with a textured colour, a label and one depth."""
        region = self.image[rows, cols]
        if region.size == 0:
            return
        shade = colour + texture * self.rng.standard_normal((*region.shape[:2], 1)).astype(np.float32)
        keep = np.ones(region.shape[:2], bool) if mask is None else mask[: region.shape[0], : region.shape[1]]
        region[keep] = shade[keep]
        self.label[rows, cols][keep] = category
        self.depth[rows, cols][keep] = depth


def ground_inverse_depth(row: float, horizon: int) -> float:
    """Inverse depth of the ground plane at an image row: linear in the distance below the horizon."""
    return MAX_INVERSE_DEPTH * max(row - horizon, 0.0) / (HEIGHT - horizon)


def render_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image HxWx3 in [0, 1], labels HxW int8 (-1 void), inverse depth HxW (0 invalid)."""
    canvas = Canvas(rng)
    horizon = int(HEIGHT * rng.uniform(0.36, 0.5))
    sky = np.array([0.45, 0.62, 0.9], np.float32) + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    gradient = np.linspace(0.0, 0.15, horizon, dtype=np.float32)[:, None, None]
    canvas.image[:horizon] = sky + gradient
    canvas.label[:horizon] = SKY
    rows = np.arange(horizon, HEIGHT, dtype=np.float32)
    canvas.depth[horizon:] = (MAX_INVERSE_DEPTH * (rows - horizon) / (HEIGHT - horizon))[:, None]
    road = np.float32(rng.uniform(0.25, 0.4))
    canvas.image[horizon:] = road + 0.04 * rng.standard_normal((HEIGHT - horizon, WIDTH, 1)).astype(
        np.float32
    )
    canvas.label[horizon:] = FLAT

    objects = []  # (base row, painter); painted from far (small base row) to near
    x = -int(rng.integers(0, 30))
    while x < WIDTH:  # a row of buildings along the horizon
        width = int(rng.integers(25, 70))
        objects.append((horizon + rng.uniform(0.5, 3), "building", x, width))
        x += width + int(rng.integers(0, 12))
    for kind, count in (
        ("tree", rng.integers(1, 4)),
        ("vehicle", rng.integers(1, 5)),
        ("person", rng.integers(0, 5)),
        ("pole", rng.integers(1, 4)),
    ):
        for _ in range(int(count)):
            base = horizon + (HEIGHT - horizon) * rng.uniform(0.08, 0.9) ** 1.5
            objects.append((base, kind, int(rng.integers(-10, WIDTH)), 0))
    for base, kind, x, width in sorted(objects, key=lambda item: item[0]):
        draw_object(canvas, kind, base, horizon, x, width)

    bonnet = HEIGHT - int(rng.integers(4, 10))  # the ego vehicle: void, no depth
    canvas.image[bonnet:] = 0.1 + 0.03 * rng.standard_normal((HEIGHT - bonnet, WIDTH, 1)).astype(np.float32)
    canvas.label[bonnet:] = -1
    canvas.depth[bonnet:] = 0.0
    dropouts = rng.random((HEIGHT, WIDTH)) < 0.02  # stereo drop-outs: label kept, depth invalid
    canvas.depth[dropouts] = 0.0

    light = rng.uniform(0.75, 1.15) * np.linspace(rng.uniform(0.85, 1.0), rng.uniform(0.95, 1.1), WIDTH)
    image = canvas.image * light[None, :, None].astype(np.float32)
    image += 0.02 * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0), canvas.label, canvas.depth


def draw_object(canvas: Canvas, kind: str, base: float, horizon: int, x: int, width: int) -> None:
    """Paint one object standing on the ground at row `base`, sized by its inverse depth."""
    rng = canvas.rng
    depth = ground_inverse_depth(base, horizon)
    scale = max(0.6 * (base - horizon), 1.0)  # pixels per metre: proportional to inverse depth
    bottom = int(base)

    def box(height: float, wide: float, left: int) -> tuple[slice, slice]:
        return slice(max(int(bottom - height), 0), bottom), slice(max(left, 0), max(int(left + wide), 0))

    if kind == "building":
        height = rng.uniform(0.3, 0.95) * horizon + 3
        colour = np.array([0.55, 0.45, 0.38], np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(
            -0.05, 0.05, 3
        )
        rows, cols = box(height, width, x)
        canvas.paint(rows, cols, CONSTRUCTION, colour.astype(np.float32), depth)
        window = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
        window[2::6, :] = True
        window[:, ::5] = False
        canvas.paint(
            rows, cols, CONSTRUCTION, (colour * 0.55).astype(np.float32), depth, mask=window, texture=0.02
        )
    elif kind == "tree":
        height, wide = 3.5 * scale * rng.uniform(0.7, 1.3), 2.2 * scale * rng.uniform(0.7, 1.3)
        rows, cols = box(height, wide, x)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        yy, xx = np.mgrid[0:h, 0:w]
        crown = ((yy - 0.4 * h) / (0.45 * h + 1e-6)) ** 2 + ((xx - 0.5 * w) / (0.5 * w + 1e-6)) ** 2 <= 1
        trunk = (np.abs(xx - 0.5 * w) < max(w * 0.08, 1)) & (yy > 0.6 * h)
        green = np.array([0.2, 0.5, 0.15], np.float32) * rng.uniform(0.7, 1.3)
        canvas.paint(rows, cols, NATURE, green, depth, mask=crown | trunk, texture=0.09)
    elif kind == "vehicle":
        height, wide = 1.5 * scale * rng.uniform(0.9, 1.2), 4.0 * scale * rng.uniform(0.8, 1.2)
        rows, cols = box(height, wide, x)
        colour = rng.choice(
            [[0.7, 0.1, 0.1], [0.1, 0.2, 0.6], [0.9, 0.9, 0.9], [0.08, 0.08, 0.1], [0.6, 0.6, 0.65]]
        )
        canvas.paint(rows, cols, VEHICLE, np.asarray(colour, np.float32), depth, texture=0.03)
        top = slice(rows.start, rows.start + max((rows.stop - rows.start) // 3, 1))
        canvas.paint(top, cols, VEHICLE, np.array([0.15, 0.2, 0.25], np.float32), depth, texture=0.02)
    elif kind == "person":
        height, wide = 1.75 * scale * rng.uniform(0.85, 1.1), 0.55 * scale
        rows, cols = box(height, max(wide, 1), x)
        clothes = rng.uniform(0.1, 0.8, 3).astype(np.float32)
        canvas.paint(rows, cols, HUMAN, clothes, depth, texture=0.04)
        head = slice(rows.start, rows.start + max((rows.stop - rows.start) // 6, 1))
        canvas.paint(head, cols, HUMAN, np.array([0.85, 0.65, 0.5], np.float32), depth, texture=0.02)
    else:  # pole with a sign on top
        height = 4.0 * scale * rng.uniform(0.8, 1.2)
        rows, cols = box(height, max(0.15 * scale, 1), x)
        canvas.paint(rows, cols, OBJECT, np.array([0.5, 0.5, 0.5], np.float32), depth, texture=0.02)
        sign = box(height, max(0.8 * scale, 2), x - int(0.3 * scale))
        sign = (slice(sign[0].start, sign[0].start + max(int(0.6 * scale), 2)), sign[1])
        colour = rng.choice([[0.95, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.3, 0.8]])
        canvas.paint(*sign, OBJECT, np.asarray(colour, np.float32), depth, texture=0.02)


def label_19(label_7: np.ndarray) -> np.ndarray:
    """The 19-class map of a synthetic scene: one CityScapes train id per category, void stays -1."""
    out = np.full(label_7.shape, -1, np.int8)
    for category, train_id in TRAIN_ID.items():
        out[label_7 == category] = train_id
    return out


def write_split(root: Path, split: str, count: int, seed: int) -> None:
    """Render `count` scenes of `split` into the MTAN layout under `root` (float32 arrays, as published)."""
    for folder in FOLDERS:
        (root / split / folder).mkdir(parents=True, exist_ok=True)
    split_seed = SPLITS.index(split)
    for i in range(count):
        image, label, depth = render_scene(np.random.default_rng([seed, split_seed, i]))
        np.save(root / split / IMAGE / f"{i}.npy", image)
        np.save(root / split / LABEL_FOLDERS[7] / f"{i}.npy", label.astype(np.float32))
        np.save(root / split / LABEL_FOLDERS[19] / f"{i}.npy", label_19(label).astype(np.float32))
        np.save(root / split / DEPTH / f"{i}.npy", depth[:, :, None])


def default_cache_dir() -> Path:
    """Where the synthetic set is cached: $MTAN_DATA_DIR, else ~/.cache/mtan."""
    return Path(os.environ.get("MTAN_DATA_DIR", Path.home() / ".cache" / "mtan"))


def ensure_synthetic(cache_dir: Path | None = None, seed: int = 0) -> Path:
    """The synthetic set's root, generated (in seconds) on first use; written to a temporary folder and
    renamed, so an interrupted generation never leaves a half-written set behind."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache_dir / f"synthetic-v{VERSION}-seed{seed}"
    if root.is_dir():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for split, count in SPLIT_SIZES.items():
        write_split(staging, split, count, seed)
    try:
        staging.rename(root)
    except OSError:  # another process finished first: its set is identical
        shutil.rmtree(staging, ignore_errors=True)
    return root
