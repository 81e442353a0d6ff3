"""Published CityScapes numbers to compare a study with, each with its source and protocol.

Only rows whose source is known are carried (docs/design.md, "Published numbers"): the paper's Table 2 (MTAN
with equal, DWA and uncertainty weighting, and One Task), the seed report's two rows, and the rows of the
Nash-MTL table (MTAN with LS/DWA/UW and the single-task baseline), each with its protocol. Values are as
published: mIoU and pixel accuracy in percent, abs err in the data's inverse-depth units, rel err a
plain ratio. Each value sits under the metric key of the convention its source used, so a published
number is never set beside one of this project's numbers computed another way. `uncertain` names the
keys whose convention the source does not state (placed where it most probably belongs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import pandas as pd

from analysis.columns import COMPARISON_METRICS
from mtan.metrics import ACCUMULATED, PAPER_2019

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


PAPER_SOURCE = (
    "Liu, Johns, Davison, End-to-End Multi-Task Learning with Attention, CVPR 2019 (arXiv:1803.10704v2), "
    "Table 2 (CityScapes)"
)
PAPER_GROUP = "paper (Liu et al. 2019)"
PAPER_PROTOCOL = {
    "source": PAPER_SOURCE,
    "group": PAPER_GROUP,
    "dataset": CITYSCAPES_MTAN + ", no augmentation",
    "resolution": RESOLUTION,
    "epochs": 200,
    "seg_convention": PAPER_2019,
    "depth_averaging": "per-batch mean (official code)",
    "evaluation": "mean of the last 10 epochs on the validation set, one run (one seed)",
}
MTAN_SEGNET = "SegNet (VGG-16 encoder) with MTAN attention"


# The metric keys each source's convention puts its published (mIoU %, pix acc %, abs err, rel err) under:
# the order of `mtan.metrics.DELTA_M_KEYS`, each key the same quantity in the source's convention. The
# Nash-MTL table's depth errors are per-batch means (the CAGrad CityScapes code its STL row comes from
# divides each batch's error sum by its valid pixels and averages the batches), so they sit under
# ``*_batch_mean``, not under DELTA_M_KEYS' per-pixel ``abs_err``/``rel_err``.
PAPER_KEYS = ("miou_2019", "pixel_acc_2019", "abs_err_batch_mean", "rel_err_batch_mean")
ACCUMULATED_KEYS = ("miou", "pixel_acc", "abs_err_batch_mean", "rel_err_batch_mean")


def _published_row(
    key: str,
    label: str,
    weighting: str,
    backbone: str,
    values: tuple[float, ...],
    *,
    keys: tuple[str, ...],
    protocol: Mapping[str, object],
    uncertain: frozenset[str] = frozenset(),
) -> ReferenceRow:
    """A row of one source: `values` in the published order, under that source's metric `keys`."""
    return ReferenceRow(
        key=key,
        label=label,
        weighting=weighting,
        backbone=backbone,
        values=dict(zip(keys, values, strict=True)),
        uncertain=uncertain,
        **protocol,
    )


_paper_row = partial(_published_row, keys=PAPER_KEYS, protocol=PAPER_PROTOCOL)

NASH_SOURCE = (
    "Navon et al., Multi-Task Learning as a Bargaining Game (Nash-MTL), ICML 2022 (arXiv:2202.01017), "
    "Table 3 (CityScapes); the STL row is CAGrad's (Liu et al., NeurIPS 2021), also in FAMO"
)
NASH_PROTOCOL = {
    "source": NASH_SOURCE,
    "group": "Nash-MTL (Navon et al. 2022)",
    "dataset": CITYSCAPES_MTAN + ", with augmentation",
    "resolution": RESOLUTION,
    "epochs": 200,
    "seg_convention": ACCUMULATED,
    "depth_averaging": "per-batch mean (probably: CAGrad's CityScapes code, whose STL row this is, and "
    "Nash-MTL's own code for NYUv2 average per batch)",
    "evaluation": "mean of the last 10 epochs on the validation set, averaged over 3 seeds",
}


_nash_row = partial(
    _published_row,
    keys=ACCUMULATED_KEYS,
    protocol=NASH_PROTOCOL,
    uncertain=frozenset({"abs_err_batch_mean", "rel_err_batch_mean"}),
)


SEED_REPORT_BACKBONE = "reduced SegNet ('SegNet-Basic', 5 encoder / 5 decoder layers) with MTAN attention"
SEED_PROTOCOL = {
    "source": "the project's seed report (100 epochs, reduced SegNet, He init, weight decay 1e-4)",
    "group": "seed report",
    "dataset": CITYSCAPES_MTAN,
    "resolution": RESOLUTION,
    "epochs": 100,
    "seg_convention": "accumulated (probably; not stated)",
    "depth_averaging": "not stated",
    "evaluation": "not stated",
}


_seed_row = partial(
    _published_row, keys=ACCUMULATED_KEYS, protocol=SEED_PROTOCOL, uncertain=frozenset(ACCUMULATED_KEYS)
)


# (mIoU %, pix acc %, abs err, rel err) as published.
REFERENCES: tuple[ReferenceRow, ...] = (
    _paper_row("paper_equal", "paper, MTAN equal", "equal", MTAN_SEGNET, (53.04, 91.11, 0.0144, 33.63)),
    _paper_row("paper_dwa", "paper, MTAN DWA T=2", "dwa (T=2)", MTAN_SEGNET, (53.29, 91.09, 0.0144, 34.14)),
    _paper_row(
        "paper_uncertainty",
        "paper, MTAN uncertainty",
        "uncertainty",
        MTAN_SEGNET,
        (53.86, 91.10, 0.0144, 35.72),
    ),
    _paper_row(
        "paper_one_task",
        "paper, One Task",
        "- (one network per task)",
        "SegNet (VGG-16 encoder), one network per task",
        (51.09, 90.69, 0.0158, 34.17),
    ),
    _seed_row(
        "seed_dwa", "seed report, DWA T=2", "dwa (T=2)", SEED_REPORT_BACKBONE, (68.09, 91.14, 0.0161, 38.39)
    ),
    _seed_row(
        "seed_equal", "seed report, equal", "equal", SEED_REPORT_BACKBONE, (67.76, 91.15, 0.0160, 38.01)
    ),
    _nash_row(
        "nash_equal", "Nash-MTL table, MTAN LS (equal)", "equal", MTAN_SEGNET, (75.18, 93.49, 0.0155, 46.77)
    ),
    _nash_row("nash_dwa", "Nash-MTL table, MTAN DWA", "dwa", MTAN_SEGNET, (75.24, 93.52, 0.0160, 44.37)),
    _nash_row(
        "nash_uncertainty",
        "Nash-MTL table, MTAN UW",
        "uncertainty",
        MTAN_SEGNET,
        (72.02, 92.85, 0.0140, 30.13),
    ),
    _nash_row(
        "nash_stl",
        "single-task baseline (STL, Nash-MTL table)",
        "- (one network per task)",
        "SegNet, one network per task",
        (74.01, 93.16, 0.0125, 27.77),
    ),
)

DEFAULT_DELTA_M_ROW = "nash_stl"  # the published row Delta_m is computed against by default


def delta_m_keys(row: ReferenceRow) -> tuple[str, ...]:
    """The keys of `row`'s four numbers in `mtan.metrics.DELTA_M_KEYS`' order (mIoU, pix acc, abs err,
    rel err), each under the convention the row's source used."""
    return tuple(row.values)


def table_rows(against: str = DEFAULT_DELTA_M_ROW) -> tuple[ReferenceRow, ...]:
    """The published rows of the table whose single-task row is `against`, that row first: the rows a
    Delta_m against it compares."""
    stl = reference(against)
    return (stl, *(row for row in REFERENCES if row.group == stl.group and row.key != stl.key))


def reference(key: str) -> ReferenceRow:
    """The published row named `key`; a `KeyError` naming the known keys otherwise."""
    for row in REFERENCES:
        if row.key == key:
            return row
    raise KeyError(f"unknown reference row {key!r}; known: {', '.join(r.key for r in REFERENCES)}")


def reference_frame(rows: tuple[ReferenceRow, ...] = REFERENCES) -> pd.DataFrame:
    """The published rows as a DataFrame indexed by key: one column per comparison metric (NaN where the
    source used the other convention) plus the protocol columns."""
    entries = []
    for row in rows:
        entry: dict[str, object] = {"key": row.key, "label": row.label, "group": row.group}
        entry.update({m: row.values.get(m, float("nan")) for m in COMPARISON_METRICS})
        entry.update(
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
        entries.append(entry)
    return pd.DataFrame.from_records(entries).set_index("key")
