"""Validation of a model over a split, and the trivial per-task baselines the study measures against."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mtan.data import Batch, DataBundle, Split, iterate_batches
from mtan.tasks import metric_accumulators, task_targets

Predictor = Callable[[Batch], dict[str, torch.Tensor]]


def evaluate_predictor(
    predict: Predictor, split: Split, num_classes: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """All metrics of `predict` (batch -> {task: output}) over `split`, evaluated in batches of
    `batch_size` (the batch of the per-batch means)."""
    accumulators = metric_accumulators(num_classes)
    with torch.inference_mode():
        for batch in iterate_batches(split, batch_size, device):
            outputs, targets = predict(batch), task_targets(batch)
            for task, accumulator in accumulators.items():
                accumulator.update(outputs[task], targets[task])
    metrics: dict[str, float] = {}
    for accumulator in accumulators.values():
        metrics.update(accumulator.compute())
    return metrics


def evaluate_model(
    model: nn.Module, split: Split, num_classes: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """All metrics of the model in eval mode over `split`."""
    model.eval()
    return evaluate_predictor(lambda batch: model(batch.images), split, num_classes, batch_size, device)


# Images per chunk of the statistics below: they run on the (possibly shared, read-only) training set
# without a full-size temporary (an int64 copy of CityScapes' labels alone would be 780 MB).
CHUNK = 64


def majority_class(labels: np.ndarray, num_classes: int) -> int:
    """The most frequent class of `labels` (N,H,W), void (-1) excluded; ties go to the lower class."""
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(labels), CHUNK):
        chunk = labels[start : start + CHUNK].ravel()
        counts += np.bincount(chunk[chunk >= 0], minlength=num_classes)
    return int(counts.argmax())


def mean_valid_depth(depth: np.ndarray) -> float:
    """The mean of `depth` over its valid pixels (> 0), summed in float64."""
    total, count = 0.0, 0
    for start in range(0, len(depth), CHUNK):
        chunk = depth[start : start + CHUNK]
        valid = chunk[chunk > 0]
        total += float(valid.sum(dtype=np.float64))
        count += valid.size
    return total / count


def trivial_baselines(
    data: DataBundle, batch_size: int, device: torch.device | None = None
) -> dict[str, float]:
    """Metrics on the validation split of the trivial predictors: the training set's majority class
    everywhere, and its mean valid depth everywhere."""
    device = device or torch.device("cpu")
    majority = majority_class(data.train.labels, data.num_classes)
    mean_depth = mean_valid_depth(data.train.depth)

    def predict(batch: Batch) -> dict[str, torch.Tensor]:
        n, h, w = batch.labels.shape
        logits = torch.zeros(n, data.num_classes, h, w, device=batch.images.device)
        logits[:, majority] = 1.0
        return {
            "segmentation": logits,
            "depth": torch.full((n, 1, h, w), mean_depth, device=batch.images.device),
        }

    return evaluate_predictor(predict, data.val, data.num_classes, batch_size, device)
