"""Evaluation metrics over a whole split: one table of facts per metric, and one accumulator per task.

Segmentation (void pixels have label -1):
- accumulated (official repo since Nov 2020, torchvision): one confusion matrix over the split, void
  excluded; pixel accuracy = trace / total, IoU_c = TP / (TP + FP + FN), mIoU = mean of IoU_c. A class
  absent from both prediction and truth over the whole split has no IoU (0/0) and is left out of the mean.
- the paper's 2019 convention (official code of 2019, lorenmt/mtan 8064cc6, `compute_miou`/`compute_iou`):
  per image and class c, union = pixels predicted c OR labelled c over ALL pixels, void included (a void
  pixel predicted as c counts in c's union; a class predicted only on void pixels counts with IoU 0);
  classes with an empty union are skipped; the image's mIoU is the mean over the rest. Pixel accuracy
  per image = correct / non-void pixels. Both are averaged per batch (the evaluation batch), then the
  batch means are averaged over the batches, so an uneven last batch weighs as much as a full one.
- the official fix of July 2020 (ff79d45): the same, with void pixels removed from the union.

Depth over valid pixels (ground truth > 0): abs err = mean |d - d_hat|, rel err = mean |d - d_hat| / d,
as a global per-pixel mean (primary) and as the official mean of per-batch means (``*_batch_mean``).

`delta_m` is the multi-task model's mean relative change against single-task networks on the same data
(Maninis et al. 2019, Eq. 4), as CAGrad, Nash-MTL and FAMO report it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from mtan.losses import VOID_LABEL

ACCUMULATED = "accumulated over the split"
PAPER_2019 = "paper 2019 (official code: per image, void in the union, mean of per-batch means)"
OFFICIAL_2020 = "official code July 2020 (per image, void masked, mean of per-batch means)"
PER_PIXEL = "per-pixel mean over the split"
OBJECTIVE = "study objective"


@dataclass(frozen=True)
class Metric:
    """The facts about one metric key of `metrics.jsonl`: which task it measures, which way is better,
    its unit, whether published tables show it in percent, its label and its convention."""

    name: str
    task: str  # a task of `mtan.tasks.TASKS`, or "multitask"
    higher_is_better: bool
    unit: str
    percent: bool
    label: str
    convention: str
    short: str  # the name in a console line (`mtan.train`'s epoch line)


_UNIT_FRACTION, _UNIT_DEPTH, _UNIT_RATIO = "fraction", "data's depth units", "ratio"
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "miou", "segmentation", True, _UNIT_FRACTION, True, "mIoU % (accumulated)", ACCUMULATED, "mIoU"
        ),
        Metric(
            "pixel_acc",
            "segmentation",
            True,
            _UNIT_FRACTION,
            True,
            "pix acc % (accumulated)",
            ACCUMULATED,
            "pix acc",
        ),
        Metric(
            "miou_2019",
            "segmentation",
            True,
            _UNIT_FRACTION,
            True,
            "mIoU % (paper 2019)",
            PAPER_2019,
            "mIoU 2019",
        ),
        Metric(
            "pixel_acc_2019",
            "segmentation",
            True,
            _UNIT_FRACTION,
            True,
            "pix acc % (paper 2019)",
            PAPER_2019,
            "pix acc 2019",
        ),
        Metric(
            "miou_2020",
            "segmentation",
            True,
            _UNIT_FRACTION,
            True,
            "mIoU % (void masked, 2020)",
            OFFICIAL_2020,
            "mIoU 2020",
        ),
        Metric(
            "abs_err", "depth", False, _UNIT_DEPTH, False, "abs err (per-pixel mean)", PER_PIXEL, "abs err"
        ),
        Metric(
            "rel_err",
            "depth",
            False,
            _UNIT_RATIO,
            False,
            "rel err, ratio (per-pixel mean)",
            PER_PIXEL,
            "rel err",
        ),
        Metric(
            "abs_err_batch_mean",
            "depth",
            False,
            _UNIT_DEPTH,
            False,
            "abs err (per-batch mean)",
            PAPER_2019,
            "abs err batch mean",
        ),
        Metric(
            "rel_err_batch_mean",
            "depth",
            False,
            _UNIT_RATIO,
            False,
            "rel err, ratio (per-batch mean)",
            PAPER_2019,
            "rel err batch mean",
        ),
        Metric(
            "score", "multitask", True, "score", False, "score (0 = trivial, 1 = perfect)", OBJECTIVE, "score"
        ),
    )
}
METRIC_KEYS: tuple[str, ...] = tuple(METRICS)
HIGHER_IS_BETTER: dict[str, bool] = {name: m.higher_is_better for name, m in METRICS.items()}
# The paper and its successors report the mean over the last 10 epochs (docs/design.md, "Metrics").
TAIL_EPOCHS = 10
# The four metrics of the published CityScapes tables that Delta_m averages over (Nash-MTL Table 3,
# FAMO Table 3: mIoU, pixel accuracy, abs err, rel err), in the accumulated convention.
DELTA_M_KEYS: tuple[str, ...] = ("miou", "pixel_acc", "abs_err", "rel_err")


def metric(name: str) -> Metric:
    """The facts of metric `name`; a `KeyError` naming the known metrics for any other name."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


def metric_text(key: str, value: float) -> str:
    """A metric for people, in the units the report uses: percent where published tables use it
    (`53.04 %`; the files keep fractions, docs/results.md), depth errors with 4 decimals, others with 3."""
    facts = metric(key)
    if facts.percent:
        return f"{100 * value:.2f} %"
    return f"{value:.4f}" if facts.unit == _UNIT_DEPTH else f"{value:.3f}"


def metrics_text(values: Mapping[str, float], keys: Sequence[str]) -> str:
    """`mIoU 53.04 %  abs err 0.0144`: the metrics `keys` of `values`, labelled, in `metric_text` units."""
    return "  ".join(f"{metric(key).short} {metric_text(key, values[key])}" for key in keys)


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
    """(N, 3) per image: mIoU of the 2019 rule (void in the union), mIoU of the July 2020 rule (void
    masked), and pixel accuracy (correct / non-void pixels; NaN without a non-void pixel, as 0/0 was).

    In both mIoU rules the classes with an empty union are skipped; NaN when every union is empty.
    """
    n = target.shape[0]
    flat_prediction = prediction.reshape(n, -1).long()
    flat_target = target.reshape(n, -1).long()
    image = torch.arange(n, device=target.device)[:, None].expand_as(flat_target)
    valid = flat_target != VOID_LABEL
    index = (image[valid] * num_classes + flat_target[valid]) * num_classes + flat_prediction[valid]
    confusion = torch.bincount(index, minlength=n * num_classes**2).reshape(n, num_classes, num_classes)
    on_void = torch.bincount(
        image[~valid] * num_classes + flat_prediction[~valid], minlength=n * num_classes
    ).reshape(n, num_classes)
    intersection = confusion.diagonal(dim1=1, dim2=2).double()
    union_masked = confusion.sum(1) + confusion.sum(2) - confusion.diagonal(dim1=1, dim2=2)
    union_2019 = union_masked + on_void

    def mean_iou(union: torch.Tensor) -> torch.Tensor:
        iou = torch.where(
            union > 0, intersection / union.clamp(min=1), torch.full_like(intersection, math.nan)
        )
        return torch.nanmean(iou, dim=1)

    accuracy = intersection.sum(1) / valid.sum(1).double()
    return torch.stack((mean_iou(union_2019), mean_iou(union_masked), accuracy), dim=1)


class TaskMetrics(Protocol):
    """A task's metrics accumulated batch by batch (one `update` per evaluation batch)."""

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...


class SegmentationMetrics:
    """The segmentation keys of `METRICS` over a split, in all three conventions."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.batch_means: list[torch.Tensor] = []  # per batch: mean of `per_image_scores` rows

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one evaluation batch: logits (N,C,H,W), labels (N,H,W) with -1 = void."""
        prediction = logits.argmax(dim=1)
        self.confusion += confusion_matrix(prediction, labels, self.num_classes).cpu()
        self.batch_means.append(per_image_scores(prediction, labels, self.num_classes).mean(0).cpu())

    def compute(self) -> dict[str, float]:
        """The split's values; NaN where undefined."""
        iou = iou_from_confusion(self.confusion)
        total = int(self.confusion.sum())
        means = torch.stack(self.batch_means).mean(0) if self.batch_means else torch.full((3,), math.nan)
        return {
            "miou": float(torch.nanmean(iou)) if not torch.isnan(iou).all() else math.nan,
            "pixel_acc": float(self.confusion.trace()) / total if total else math.nan,
            "miou_2019": float(means[0]),
            "pixel_acc_2019": float(means[2]),
            "miou_2020": float(means[1]),
        }


class DepthMetrics:
    """The depth keys of `METRICS` over a split: per-pixel means and the official mean of batch means."""

    def __init__(self) -> None:
        self.abs_sum = 0.0
        self.rel_sum = 0.0
        self.valid_pixels = 0
        self.batch_means: list[tuple[float, float]] = []

    def update(self, prediction: torch.Tensor, depth: torch.Tensor) -> None:
        """Add one evaluation batch: prediction (N,1,H,W), depth (N,H,W) with 0 = invalid. A batch
        without a valid pixel gives NaN batch means, as the official 0/0 did."""
        valid = depth > 0
        count = int(valid.sum())
        truth = depth[valid].double()
        error = (prediction[:, 0][valid].double() - truth).abs()
        abs_sum, rel_sum = float(error.sum()), float((error / truth).sum())
        self.abs_sum += abs_sum
        self.rel_sum += rel_sum
        self.valid_pixels += count
        self.batch_means.append((abs_sum / count, rel_sum / count) if count else (math.nan, math.nan))

    def compute(self) -> dict[str, float]:
        """The split's values; NaN where undefined (no valid pixel at all)."""
        pixels = self.valid_pixels or math.nan
        batch = torch.tensor(self.batch_means or [(math.nan, math.nan)], dtype=torch.float64).mean(0)
        return {
            "abs_err": self.abs_sum / pixels,
            "rel_err": self.rel_sum / pixels,
            "abs_err_batch_mean": float(batch[0]),
            "rel_err_batch_mean": float(batch[1]),
        }


def task_metrics(task: str, num_classes: int) -> TaskMetrics:
    """A fresh accumulator for `task` ("segmentation" needs `num_classes`)."""
    if task == "segmentation":
        return SegmentationMetrics(num_classes)
    if task == "depth":
        return DepthMetrics()
    raise KeyError(f"no metrics for task {task!r}")


def multitask_score(metrics: Mapping[str, float], baselines: Mapping[str, float]) -> float:
    """The study's objective: the mean over both tasks of the share of the gap from the trivial baseline
    to a perfect prediction that the model closes (0 = trivial baselines, 1 = perfect):
    0.5 * ((miou - b_miou) / (1 - b_miou) + (b_abs_err - abs_err) / b_abs_err).
    """
    segmentation = (metrics["miou"] - baselines["miou"]) / (1.0 - baselines["miou"])
    depth = (baselines["abs_err"] - metrics["abs_err"]) / baselines["abs_err"]
    return 0.5 * (segmentation + depth)


def delta_m(
    metrics: Mapping[str, float], single_task: Mapping[str, float], keys: Sequence[str] = DELTA_M_KEYS
) -> float:
    """Delta_m in percent (Maninis et al. 2019, Eq. 4): (1/K) sum_k (-1)^{delta_k} (M_m,k - M_b,k) /
    M_b,k * 100 over the K metrics `keys`, M_m of the multi-task model (`metrics`), M_b of the single-task
    networks (`single_task`), delta_k = 1 where higher is better (`METRICS`). Lower is better; 0 is parity.

    Both mappings must hold every key in the same units and convention (each term is a ratio, so the
    units cancel: fractions and percentages give the same value). A NaN value gives NaN; a missing key a
    `KeyError`; a single-task value of 0 (no relative change) or no keys a `ValueError`.
    """
    if not keys:
        raise ValueError("delta_m needs at least one metric")
    total = 0.0
    for key in keys:
        baseline = float(single_task[key])
        if baseline == 0:
            raise ValueError(f"delta_m: the single-task {key} is 0, so it has no relative change")
        sign = -1.0 if metric(key).higher_is_better else 1.0
        total += sign * (float(metrics[key]) - baseline) / baseline
    return 100.0 * total / len(keys)


def tail_mean(history: Sequence[Mapping[str, float]], n: int = TAIL_EPOCHS) -> dict[str, float]:
    """Each metric's mean over the last `n` epochs of `history` (all epochs when fewer), the paper's
    evaluation protocol; a NaN in those epochs gives NaN. Metrics absent from the rows are left out."""
    tail = list(history)[-n:] if n > 0 else []
    out: dict[str, float] = {}
    for key in METRIC_KEYS:
        values = [math.nan if row[key] is None else float(row[key]) for row in tail if key in row]
        if values:
            out[key] = math.fsum(values) / len(values)
    return out
