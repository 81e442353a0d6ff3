"""Validation of a model over a split, and the trivial per-task baselines the study measures against."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mtan.data import Batch, DataBundle, Split, iterate_batches
from mtan.metrics import SplitMetrics

Predictor = Callable[[Batch], dict[str, torch.Tensor]]


def evaluate_predictor(
    predict: Predictor, split: Split, num_classes: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """All metrics of `predict` (batch -> {"segmentation": logits, "depth": prediction}) over `split`."""
    metrics = SplitMetrics(num_classes)
    with torch.inference_mode():
        for batch in iterate_batches(split, batch_size, device):
            out = predict(batch)
            metrics.update(out["segmentation"], batch.labels, out["depth"], batch.depth)
    return metrics.compute()


def evaluate_model(
    model: nn.Module, split: Split, num_classes: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """All metrics of the model in eval mode over `split`."""
    model.eval()
    return evaluate_predictor(lambda batch: model(batch.images), split, num_classes, batch_size, device)


def trivial_baselines(
    data: DataBundle, batch_size: int, device: torch.device | None = None
) -> dict[str, float]:
    """Metrics on the validation split of the trivial predictors: the training set's majority class
    everywhere, and its mean valid depth everywhere."""
    device = device or torch.device("cpu")
    labels = data.train.labels  # numpy: may be a read-only view of Ray's object store
    majority = int(np.bincount(labels[labels >= 0], minlength=data.num_classes).argmax())
    mean_depth = float(data.train.depth[data.train.depth > 0].mean(dtype=np.float64))

    def predict(batch: Batch) -> dict[str, torch.Tensor]:
        n, h, w = batch.labels.shape
        logits = torch.zeros(n, data.num_classes, h, w, device=batch.images.device)
        logits[:, majority] = 1.0
        return {
            "segmentation": logits,
            "depth": torch.full((n, 1, h, w), mean_depth, device=batch.images.device),
        }

    return evaluate_predictor(predict, data.val, data.num_classes, batch_size, device)
