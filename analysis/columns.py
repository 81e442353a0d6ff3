"""Names, directions, units and conventions of the metrics a study records (from `mtan.metrics.METRICS`;
the hyperparameters' labels and scales are in the recorded search space, `analysis.space`).

Values in the results files are fractions or plain ratios (docs/results.md); published tables give
mIoU and pixel accuracy in percent. `display_value` converts, `label` says which unit and convention.
"""

from __future__ import annotations

from mtan.metrics import METRIC_KEYS, METRICS, Metric, metric
from mtan.tasks import TASKS

# The metrics of the comparison table, in the order its columns are shown: every task metric.
COMPARISON_METRICS: tuple[str, ...] = tuple(k for k in METRIC_KEYS if METRICS[k].task in TASKS)

# The metrics the figures show (one convention each, the honest primary one, plus the objective).
FIGURE_METRICS: tuple[str, ...] = ("score", "miou", "pixel_acc", "abs_err", "rel_err")


def metric_info(name: str) -> Metric:
    """The facts of metric `name` (`mtan.metrics.METRICS`); a `KeyError` for an unknown metric."""
    return metric(name)


def label(name: str) -> str:
    """The axis or column label of a metric, with its unit and convention."""
    return metric_info(name).label


def display_value(name: str, value: float) -> float:
    """A metric value as published tables show it: percent for mIoU and pixel accuracy."""
    return value * 100.0 if metric_info(name).percent else value
