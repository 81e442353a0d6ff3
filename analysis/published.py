"""Published CityScapes numbers to compare a study with, each with its source and protocol.

Only rows whose source is known are carried (docs/design.md, "Published numbers"). Values are as
published: mIoU and pixel accuracy in percent, abs err in the data's inverse-depth units, rel err a
plain ratio. Each value sits under the metric key of the convention its source used, so a published
number is never set beside one of this project's numbers computed another way. `uncertain` names the
keys whose convention the source does not state (placed where it most probably belongs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from analysis.columns import COMPARISON_METRICS

CITYSCAPES_MTAN = "CityScapes, 7 classes + depth, MTAN preprocessing (2975 train / 500 val)"
RESOLUTION = "128x256"


@dataclass(frozen=True)
class ReferenceRow:
    """One published row: its numbers and everything needed to judge whether they compare."""

    key: str
    label: str
    group: str
    source: str
    weighting: str
    dataset: str
    resolution: str
    epochs: int
    backbone: str
    seg_convention: str
    depth_averaging: str
    evaluation: str
    values: Mapping[str, float]
    uncertain: frozenset[str] = field(default_factory=frozenset)


REFERENCES: tuple[ReferenceRow, ...] = (
    ReferenceRow(
        key="paper_equal",
        label="paper, MTAN equal",
        group="paper (Liu et al. 2019)",
        source="Liu, Johns, Davison, End-to-End Multi-Task Learning with Attention, CVPR 2019 "
        "(arXiv:1803.10704), CityScapes table; checked against the paper",
        weighting="equal",
        dataset=CITYSCAPES_MTAN + ", no augmentation",
        resolution=RESOLUTION,
        epochs=200,
        backbone="SegNet (VGG-16 encoder) with MTAN attention",
        seg_convention="per-image",
        depth_averaging="per-batch mean (official code)",
        evaluation="mean of the last 10 epochs on the validation set",
        values={
            "miou_per_image": 53.04,
            "pixel_acc_per_image": 91.11,
            "abs_err_batch_mean": 0.0144,
            "rel_err_batch_mean": 33.63,
        },
    ),
    ReferenceRow(
        key="paper_dwa",
        label="paper, MTAN DWA T=2",
        group="paper (Liu et al. 2019)",
        source="Liu et al., CVPR 2019, as quoted by the seed report (not yet checked against the paper)",
        weighting="dwa (T=2)",
        dataset=CITYSCAPES_MTAN + ", no augmentation",
        resolution=RESOLUTION,
        epochs=200,
        backbone="SegNet (VGG-16 encoder) with MTAN attention",
        seg_convention="per-image",
        depth_averaging="per-batch mean (official code)",
        evaluation="mean of the last 10 epochs on the validation set",
        values={
            "miou_per_image": 53.29,
            "pixel_acc_per_image": 91.09,
            "abs_err_batch_mean": 0.0144,
            "rel_err_batch_mean": 34.14,
        },
    ),
    ReferenceRow(
        key="seed_dwa",
        label="seed report, DWA T=2",
        group="seed report",
        source="the project's seed report (100 epochs, reduced SegNet, He init, weight decay 1e-4)",
        weighting="dwa (T=2)",
        dataset=CITYSCAPES_MTAN,
        resolution=RESOLUTION,
        epochs=100,
        backbone="reduced SegNet ('SegNet-Basic', 5 encoder / 5 decoder layers) with MTAN attention",
        seg_convention="accumulated (probably; not stated)",
        depth_averaging="not stated",
        evaluation="not stated",
        values={
            "miou": 68.09,
            "pixel_acc": 91.14,
            "abs_err_batch_mean": 0.0161,
            "rel_err_batch_mean": 38.39,
        },
        uncertain=frozenset({"miou", "pixel_acc", "abs_err_batch_mean", "rel_err_batch_mean"}),
    ),
    ReferenceRow(
        key="seed_equal",
        label="seed report, equal",
        group="seed report",
        source="the project's seed report (100 epochs, reduced SegNet, He init, weight decay 1e-4)",
        weighting="equal",
        dataset=CITYSCAPES_MTAN,
        resolution=RESOLUTION,
        epochs=100,
        backbone="reduced SegNet ('SegNet-Basic', 5 encoder / 5 decoder layers) with MTAN attention",
        seg_convention="accumulated (probably; not stated)",
        depth_averaging="not stated",
        evaluation="not stated",
        values={
            "miou": 67.76,
            "pixel_acc": 91.15,
            "abs_err_batch_mean": 0.0160,
            "rel_err_batch_mean": 38.01,
        },
        uncertain=frozenset({"miou", "pixel_acc", "abs_err_batch_mean", "rel_err_batch_mean"}),
    ),
    ReferenceRow(
        key="stl_cagrad",
        label="single-task baseline (CAGrad/FAMO)",
        group="single-task baseline (CAGrad/FAMO)",
        source="single-task learning row as tabulated by CAGrad (Liu et al., NeurIPS 2021) and "
        "FAMO (Liu et al., NeurIPS 2023)",
        weighting="- (one network per task)",
        dataset=CITYSCAPES_MTAN + ", with augmentation",
        resolution=RESOLUTION,
        epochs=200,
        backbone="SegNet, one network per task",
        seg_convention="accumulated",
        depth_averaging="per-batch mean (probably: code derived from the official one)",
        evaluation="mean of the last 10 epochs on the validation set",
        values={
            "miou": 74.01,
            "pixel_acc": 93.16,
            "abs_err_batch_mean": 0.0125,
            "rel_err_batch_mean": 27.77,
        },
        uncertain=frozenset({"abs_err_batch_mean", "rel_err_batch_mean"}),
    ),
)

DEFAULT_BASELINE = "stl_cagrad"


def reference(key: str) -> ReferenceRow:
    """The published row named `key`; a `KeyError` naming the known keys otherwise."""
    for row in REFERENCES:
        if row.key == key:
            return row
    raise KeyError(f"unknown reference row {key!r}; known: {', '.join(r.key for r in REFERENCES)}")


def reference_frame(rows: tuple[ReferenceRow, ...] = REFERENCES) -> pd.DataFrame:
    """The published rows as a DataFrame indexed by key: one column per comparison metric (NaN where the
    source used the other convention) plus the protocol columns."""
    records = []
    for row in rows:
        record: dict[str, object] = {"key": row.key, "label": row.label, "group": row.group}
        record.update({m: row.values.get(m, float("nan")) for m in COMPARISON_METRICS})
        record.update(
            {
                "weighting": row.weighting,
                "source": row.source,
                "dataset": row.dataset,
                "resolution": row.resolution,
                "epochs": row.epochs,
                "backbone": row.backbone,
                "seg_convention": row.seg_convention,
                "depth_averaging": row.depth_averaging,
                "evaluation": row.evaluation,
                "uncertain": ",".join(sorted(row.uncertain)),
            }
        )
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("key")
