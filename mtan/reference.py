"""The plain per-task forward of MTAN over the parameters of `mtan.model.MTAN`: one loop per task.

It is the official implementation's order of computation (lorenmt/mtan, model_segnet_mtan.py): for each
task in turn, its attention masks (Eq. 1 and 2) level by level, the shared attention convs applied to
that task alone, then its head. The fast forward of `MTAN` must compute the same function; the tests
check that, and the benchmark compares the speed of the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtan.model import MTAN, TaskAttention
from mtan.stacking import TaskConv2d


def task_batch_norm(bn: nn.BatchNorm2d, task: int, tasks: int, x: torch.Tensor) -> torch.Tensor:
    """Batch norm with task number `task`'s share of a stacked `bn` (its channels, running statistics)."""
    size = bn.num_features // tasks
    block = slice(task * size, (task + 1) * size)
    return F.batch_norm(
        x,
        bn.running_mean[block],
        bn.running_var[block],
        bn.weight[block],
        bn.bias[block],
        bn.training,
        bn.momentum,
        bn.eps,
    )


def task_conv(conv: TaskConv2d, task: int, x: torch.Tensor) -> torch.Tensor:
    """Task number `task`'s convolution of a stacked conv, on that task's input alone."""
    weight, bias = conv.task_parameters(task)
    return F.conv2d(x, weight, bias, padding=conv.padding)


def task_mask(masks: TaskAttention, task: int, x: torch.Tensor) -> torch.Tensor:
    """Task number `task`'s attention mask g(x) = sigmoid(BN(conv(relu(BN(conv(x)))))) (Eq. 1/2)."""
    tasks = masks.conv1.tasks
    h = F.relu(task_batch_norm(masks.bn1, task, tasks, task_conv(masks.conv1, task, x)))
    return torch.sigmoid(task_batch_norm(masks.bn2, task, tasks, task_conv(masks.conv2, task, h)))


def reference_forward(model: MTAN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of `model` on images (N,3,H,W), one task after the other (a dict task -> output)."""
    shared = model.shared_features(x)
    outputs = {}
    for t, task in enumerate(model.tasks):
        a = None
        for i, (masks, conv) in enumerate(
            zip(model.encoder_masks, model.encoder_attention_conv, strict=True)
        ):
            mask_input = shared.firsts[i] if a is None else torch.cat((shared.firsts[i], a), dim=1)
            a = F.max_pool2d(conv(task_mask(masks, t, mask_input) * shared.lasts[i]), kernel_size=2, stride=2)
        for j, (masks, conv) in enumerate(
            zip(model.decoder_masks, model.decoder_attention_conv, strict=True)
        ):
            up = conv(F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True))
            a = task_mask(masks, t, torch.cat((shared.unpooled[j], up), dim=1)) * shared.decoded[j]
        outputs[task] = model.head_out[task](task_conv(model.head_conv, t, a))
    return outputs


def input_memory_format(model: nn.Module) -> torch.memory_format:
    """The layout the model's input should have: channels-last if its first 4-d parameter is, else
    contiguous."""
    weight = next(p for p in model.parameters() if p.dim() == 4)
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class PerTaskMTAN(nn.Module):
    """`model` with the per-task reference forward, in its parameters' memory format (for benchmarks)."""

    def __init__(self, model: MTAN) -> None:
        super().__init__()
        self.model = model
        self.tasks = model.tasks

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return reference_forward(self.model, x.contiguous(memory_format=input_memory_format(self.model)))
