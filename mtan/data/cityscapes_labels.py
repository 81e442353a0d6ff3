"""CityScapes label ids -> the MTAN 7-class (categories) and 19-class (train ids) labels.

Everything is derived from the labels table of the ``cityscapesscripts`` package
(``cityscapesscripts.helpers.labels.labels``), never from a hand-typed copy. docs/design.md, "Data":
7 classes = categories flat .. vehicle (categoryId 1..7 -> 0..6, void categoryId 0 -> -1);
19 classes = the standard train ids 0..18 (255 and -1 -> -1).
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

VOID: int = -1
UNKNOWN: int = -2  # marks label ids that the CityScapes table does not know

_CATEGORY_BY_ID: dict[int, str] = {label.categoryId: label.category for label in _CITYSCAPES_LABELS}
CATEGORY_NAMES: tuple[str, ...] = tuple(_CATEGORY_BY_ID[c] for c in sorted(_CATEGORY_BY_ID) if c > 0)
TRAIN_NAMES: tuple[str, ...] = tuple(
    label.name
    for label in sorted(_CITYSCAPES_LABELS, key=lambda lab: lab.trainId)
    if 0 <= label.trainId < 255
)
CLASS_NAMES: dict[int, tuple[str, ...]] = {7: CATEGORY_NAMES, 19: TRAIN_NAMES}

RGB = tuple[int, int, int]
_EVALUATED = sorted(
    (label for label in _CITYSCAPES_LABELS if 0 <= label.trainId < 255), key=lambda lab: lab.trainId
)
# CityScapes' drawing colours: a train id's own; a category's is that of its first train id (flat: road,
# construction: building, object: pole, nature: vegetation, sky, human: person, vehicle: car).
CLASS_COLOURS: dict[int, tuple[RGB, ...]] = {
    7: tuple(next(lab.color for lab in _EVALUATED if lab.category == name) for name in CATEGORY_NAMES),
    19: tuple(label.color for label in _EVALUATED),
}
VOID_COLOUR: RGB = next(label.color for label in _CITYSCAPES_LABELS if label.name == "unlabeled")

if len(CATEGORY_NAMES) != 7 or len(TRAIN_NAMES) != 19:  # the installed package must match docs/design.md
    raise RuntimeError(
        f"cityscapesscripts labels table has {len(CATEGORY_NAMES)} categories and {len(TRAIN_NAMES)} "
        "train ids; expected 7 and 19"
    )


def label_lookup(num_classes: int) -> np.ndarray:
    """A 256-entry int8 table: CityScapes label id (0..255) -> class 0..n-1, VOID, or UNKNOWN."""
    table = np.full(256, UNKNOWN, dtype=np.int8)
    for label in _CITYSCAPES_LABELS:
        if not 0 <= label.id < 256:  # "license plate" has id -1: never drawn into labelIds PNGs
            continue
        if num_classes == 7:
            table[label.id] = label.categoryId - 1 if label.categoryId > 0 else VOID
        elif num_classes == 19:
            table[label.id] = label.trainId if 0 <= label.trainId < 255 else VOID
        else:
            raise ValueError(f"num_classes must be 7 or 19, got {num_classes}")
    return table
