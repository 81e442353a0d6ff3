"""The pipeline's tasks in one place: their names, output channels, targets in a batch, losses and
metrics. The network (`mtan.model.MTAN`) is generic over tasks; the data and this table fix the two of
the CityScapes benchmark (MTAN Sec. 4: 7-class segmentation and depth)."""

from __future__ import annotations

import torch

from mtan.data import Batch
from mtan.metrics import TaskMetrics, task_metrics

TASKS: tuple[str, ...] = ("segmentation", "depth")


def task_channels(num_classes: int) -> dict[str, int]:
    """Each task's output channels: class logits for segmentation, one map for depth."""
    return {"segmentation": num_classes, "depth": 1}


def task_targets(batch: Batch) -> dict[str, torch.Tensor]:
    """Each task's ground truth in `batch`."""
    return {"segmentation": batch.labels, "depth": batch.depth}


def metric_accumulators(num_classes: int) -> dict[str, TaskMetrics]:
    """A fresh metrics accumulator per task."""
    return {task: task_metrics(task, num_classes) for task in TASKS}
