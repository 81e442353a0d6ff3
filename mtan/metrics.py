"""Evaluation metrics over a whole split, in both published conventions (DESIGN.md, "Metrics").

Segmentation, void pixels (label -1) excluded everywhere:
- accumulated (official repo since Nov 2020, torchvision): one confusion matrix over the split;
  pixel accuracy = trace / total, IoU_c = TP / (TP + FP + FN), mIoU = mean of IoU_c. A class absent from
  both prediction and ground truth over the whole split has no IoU (0/0) and is left out of the mean, so
  it neither rewards nor punishes the model; if no class has a defined IoU, mIoU is NaN.
- per image (the paper, 2019): per image, the mean IoU over the classes present in its prediction or
  ground truth, and its pixel accuracy; both averaged over the images that have valid pixels.

Depth over valid pixels (ground truth > 0): abs err = mean |d - d_hat|, rel err = mean |d - d_hat| / d,
as a global per-pixel mean (primary) and as the official mean of per-batch means (``*_batch_mean``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

SEGMENTATION_KEYS = ("miou", "pixel_acc", "miou_per_image", "pixel_acc_per_image")
DEPTH_KEYS = ("abs_err", "rel_err", "abs_err_batch_mean", "rel_err_batch_mean")
METRIC_KEYS: tuple[str, ...] = (*SEGMENTATION_KEYS, *DEPTH_KEYS, "score")
HIGHER_IS_BETTER: dict[str, bool] = {
    **dict.fromkeys(SEGMENTATION_KEYS, True),
    **dict.fromkeys(DEPTH_KEYS, False),
    "score": True,
}
# Shown in percent, as published tables show them; the files keep fractions (docs/results.md).
PERCENT_KEYS: frozenset[str] = frozenset(SEGMENTATION_KEYS)
METRIC_LABELS: dict[str, str] = {
    "miou": "mIoU",
    "pixel_acc": "pix acc",
    "miou_per_image": "mIoU per image",
    "pixel_acc_per_image": "pix acc per image",
    "abs_err": "abs err",
    "rel_err": "rel err",
    "abs_err_batch_mean": "abs err per-batch mean",
    "rel_err_batch_mean": "rel err per-batch mean",
    "score": "score",
}


def metric_text(key: str, value: float) -> str:
    """A metric for people: mIoU and pixel accuracy in percent (`53.04 %`), abs err with 4 decimals,
    rel err (a plain ratio) and the score with 3."""
    if key in PERCENT_KEYS:
        return f"{100 * value:.2f} %"
    return f"{value:.4f}" if key.startswith("abs_err") else f"{value:.3f}"


def metrics_text(values: Mapping[str, float], keys: Sequence[str]) -> str:
    """`mIoU 53.04 %  abs err 0.0144`: the metrics `keys` of `values`, labelled, in `metric_text` units."""
    return "  ".join(f"{METRIC_LABELS[key]} {metric_text(key, values[key])}" for key in keys)


def confusion_matrix(prediction: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (num_classes, num_classes), rows = ground truth, columns = prediction; void excluded."""
    valid = target >= 0
    index = target[valid].long() * num_classes + prediction[valid].long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """IoU per class from a confusion matrix (..., C, C); NaN where the class is in neither."""
    confusion = confusion.double()
    tp = confusion.diagonal(dim1=-2, dim2=-1)
    union = confusion.sum(-1) + confusion.sum(-2) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def per_image_scores(prediction: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, 2): per image, mIoU over classes present in prediction or truth, and pixel accuracy.

    Rows of images without a valid pixel are NaN.
    """
    n = target.shape[0]
    valid = target >= 0
    image = torch.arange(n, device=target.device).view(n, *([1] * (target.dim() - 1))).expand_as(target)
    index = (image[valid] * num_classes + target[valid].long()) * num_classes + prediction[valid].long()
    confusion = torch.bincount(index, minlength=n * num_classes**2).reshape(n, num_classes, num_classes)
    miou = torch.nanmean(iou_from_confusion(confusion), dim=1)
    total = confusion.sum((1, 2)).double()
    accuracy = confusion.diagonal(dim1=1, dim2=2).sum(1).double() / total
    return torch.stack((miou, accuracy), dim=1)


class SplitMetrics:
    """Accumulates predictions batch by batch and gives every metric of `METRIC_KEYS` but `score`."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.image_scores: list[torch.Tensor] = []
        self.abs_sum = 0.0
        self.rel_sum = 0.0
        self.valid_pixels = 0
        self.batch_means: list[tuple[float, float]] = []

    def update(
        self, logits: torch.Tensor, labels: torch.Tensor, depth_pred: torch.Tensor, depth: torch.Tensor
    ) -> None:
        """Add one batch: logits (N,C,H,W), labels (N,H,W), depth prediction (N,1,H,W), depth (N,H,W)."""
        prediction = logits.argmax(dim=1)
        self.confusion += confusion_matrix(prediction, labels, self.num_classes).cpu()
        self.image_scores.append(per_image_scores(prediction, labels, self.num_classes).cpu())
        valid = depth > 0
        count = int(valid.sum())
        if count:
            truth = depth[valid].double()
            error = (depth_pred[:, 0][valid].double() - truth).abs()
            abs_sum, rel_sum = float(error.sum()), float((error / truth).sum())
            self.abs_sum += abs_sum
            self.rel_sum += rel_sum
            self.valid_pixels += count
            self.batch_means.append((abs_sum / count, rel_sum / count))

    def compute(self) -> dict[str, float]:
        """The split's metrics; NaN where undefined (no valid pixel at all)."""
        iou = iou_from_confusion(self.confusion)
        total = int(self.confusion.sum())
        scores = torch.cat(self.image_scores) if self.image_scores else torch.empty(0, 2)
        batch = np.array(self.batch_means) if self.batch_means else np.full((1, 2), np.nan)
        pixels = self.valid_pixels or float("nan")
        return {
            "miou": float(torch.nanmean(iou)) if not torch.isnan(iou).all() else float("nan"),
            "pixel_acc": float(self.confusion.trace()) / total if total else float("nan"),
            "miou_per_image": float(torch.nanmean(scores[:, 0])) if len(scores) else float("nan"),
            "pixel_acc_per_image": float(torch.nanmean(scores[:, 1])) if len(scores) else float("nan"),
            "abs_err": self.abs_sum / pixels,
            "rel_err": self.rel_sum / pixels,
            "abs_err_batch_mean": float(batch[:, 0].mean()),
            "rel_err_batch_mean": float(batch[:, 1].mean()),
        }


def multitask_score(metrics: Mapping[str, float], baselines: Mapping[str, float]) -> float:
    """The study's objective: the mean over both tasks of the share of the gap from the trivial baseline
    to a perfect prediction that the model closes (0 = trivial baselines, 1 = perfect):
    0.5 * ((miou - b_miou) / (1 - b_miou) + (b_abs_err - abs_err) / b_abs_err).
    """
    segmentation = (metrics["miou"] - baselines["miou"]) / (1.0 - baselines["miou"])
    depth = (baselines["abs_err"] - metrics["abs_err"]) / baselines["abs_err"]
    return 0.5 * (segmentation + depth)
