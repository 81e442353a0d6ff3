"""Per-task training losses (MTAN Sec. 4: pixel-wise cross entropy for segmentation, L1 for depth)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

VOID_LABEL = -1


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean pixel-wise cross entropy over the non-void pixels (label -1 is ignored); 0 if none is valid."""
    labels = labels.long()
    if not (labels != VOID_LABEL).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=VOID_LABEL)


def depth_loss(prediction: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over valid pixels (ground truth > 0); 0 if none is valid.

    `prediction` is (N,1,H,W), `depth` (N,H,W) with 0 marking invalid pixels.
    """
    valid = depth > 0
    if not valid.any():
        return prediction.sum() * 0.0
    return (prediction[:, 0] - depth).abs()[valid].mean()


TASK_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "segmentation": segmentation_loss,
    "depth": depth_loss,
}
