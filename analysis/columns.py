"""Names, directions, units and conventions of the metrics a study records (the hyperparameters'
labels and scales are in the recorded search space, `analysis.space`).

Values in the results files are fractions or plain ratios (docs/results.md); published tables give
mIoU and pixel accuracy in percent. `display_value` converts, `label` says which unit and convention.
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS: tuple[str, ...] = ("segmentation", "depth")


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric of `metrics.jsonl`."""

    name: str
    label: str
    higher_is_better: bool
    percent: bool
    convention: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("miou", "mIoU % (accumulated)", True, True, "accumulated"),
        MetricInfo("miou_per_image", "mIoU % (per-image)", True, True, "per-image"),
        MetricInfo("pixel_acc", "pix acc % (accumulated)", True, True, "accumulated"),
        MetricInfo("pixel_acc_per_image", "pix acc % (per-image)", True, True, "per-image"),
        MetricInfo("abs_err", "abs err (per-pixel mean)", False, False, "per-pixel mean"),
        MetricInfo("abs_err_batch_mean", "abs err (per-batch mean)", False, False, "per-batch mean"),
        MetricInfo("rel_err", "rel err, ratio (per-pixel mean)", False, False, "per-pixel mean"),
        MetricInfo("rel_err_batch_mean", "rel err, ratio (per-batch mean)", False, False, "per-batch mean"),
        MetricInfo("score", "score (0 = trivial, 1 = perfect)", True, False, "study objective"),
    )
}

# The metrics of the comparison table, in the order its columns are shown.
COMPARISON_METRICS: tuple[str, ...] = (
    "miou",
    "miou_per_image",
    "pixel_acc",
    "pixel_acc_per_image",
    "abs_err",
    "abs_err_batch_mean",
    "rel_err",
    "rel_err_batch_mean",
)

# The metrics the figures show (one convention each, the honest primary one, plus the objective).
FIGURE_METRICS: tuple[str, ...] = ("score", "miou", "pixel_acc", "abs_err", "rel_err")


def metric_info(name: str) -> MetricInfo:
    """The `MetricInfo` of `name`; unknown metrics are read as higher-is-better plain numbers."""
    return METRICS.get(name, MetricInfo(name, name, True, False, "as recorded"))


def label(name: str) -> str:
    """The axis or column label of a metric, with its unit and convention."""
    return metric_info(name).label


def display_value(name: str, value: float) -> float:
    """A metric value as published tables show it: percent for mIoU and pixel accuracy."""
    return value * 100.0 if metric_info(name).percent else value
