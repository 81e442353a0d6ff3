"""Every task's attention features in one tensor, stacked along the batch dimension, and the ops on it.

MTAN runs one attention branch per task (Sec. 3.1). Instead of a Python loop over tasks, the fast network
holds the branches of all T tasks in one channels-last tensor of shape (T*N, C, H, W), task t in batch
rows [t*N, (t+1)*N): each task's block is contiguous. Layers shared by all tasks (the attention 3x3
convs, pooling, upsampling, activations) then run once on all tasks; per-task 1x1 convs are matrix
products on each task's rows (`task_linear`), and batch norm keeps per-task statistics
(`batch_norm_per_task`), exactly as if each were called once per task.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


class TaskConv2d(nn.Module):
    """The weights of one convolution per task, stacked along output channels: task t's weight is
    ``weight[t*C_out:(t+1)*C_out]`` (C_out, C_in, k, k), its bias ``bias[t*C_out:(t+1)*C_out]``."""

    def __init__(self, tasks: int, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.tasks = tasks
        self.out_channels = out_channels
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(tasks * out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(tasks * out_channels))

    def task_parameters(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of task number `task`, as views."""
        block = slice(task * self.out_channels, (task + 1) * self.out_channels)
        return self.weight[block], self.bias[block]


def rows(x: torch.Tensor) -> torch.Tensor:
    """A channels-last (N,C,H,W) tensor as the matrix (N*H*W, C) over the same memory."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def unrows(matrix: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """The inverse of `rows`: (N*H*W, C) -> channels-last (N,C,H,W)."""
    return matrix.view(batch, height, width, -1).permute(0, 3, 1, 2)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """`x` in the channels-last layout (no copy when it already is)."""
    return x.contiguous(memory_format=torch.channels_last)


def compute_dtype(tensors: list[torch.Tensor]) -> torch.dtype:
    """The dtype of a matrix product on `tensors`: autocast's where it is on, else their common dtype."""
    device = tensors[0].device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return functools.reduce(torch.promote_types, (x.dtype for x in tensors))


class _TaskLinear(torch.autograd.Function):
    """Per task t: a 1x1 conv of concat(shared, task t's block of stacked) with task t's weight block,
    as matrix products that read and write each task's contiguous rows in place (no concatenation)."""

    @staticmethod
    def forward(ctx, shared, stacked, weight, bias, tasks):  # noqa: ANN001, ANN205 (autograd signature)
        dtype = compute_dtype([x for x in (shared, stacked) if x is not None])
        shared = shared.to(dtype) if shared is not None else None
        stacked = stacked.to(dtype) if stacked is not None else None
        like = shared if shared is not None else stacked
        batch = like.shape[0] if shared is not None else like.shape[0] // tasks
        height, width = like.shape[2:]
        matrix = weight.flatten(1).to(dtype)  # (T*C_out, C_shared + C_task)
        bias = bias.to(dtype)
        split = shared.shape[1] if shared is not None else 0
        out_size = matrix.shape[0] // tasks
        out = like.new_empty(tasks * batch * height * width, out_size)
        shared_rows = rows(shared) if shared is not None else None
        task_rows = rows(stacked).chunk(tasks) if stacked is not None else [None] * tasks
        for t, (x, y) in enumerate(zip(task_rows, out.chunk(tasks), strict=True)):
            w, b = matrix[t * out_size : (t + 1) * out_size], bias[t * out_size : (t + 1) * out_size]
            first = shared_rows if shared_rows is not None else x
            torch.addmm(b, first, w[:, : first.shape[1]].t(), out=y)
            if shared_rows is not None and x is not None:
                torch.addmm(y, x, w[:, split:].t(), out=y)  # (out= variants are what FLOP counters see)
        ctx.save_for_backward(shared, stacked, weight)
        ctx.tasks, ctx.split = tasks, split
        return unrows(out, tasks * batch, height, width)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205 (autograd signature)
        shared, stacked, weight = ctx.saved_tensors
        tasks, split = ctx.tasks, ctx.split
        dtype = (shared if shared is not None else stacked).dtype
        g = rows(channels_last(grad.to(dtype)))
        matrix = weight.flatten(1).to(dtype)
        out_size = matrix.shape[0] // tasks
        grad_weight = torch.empty_like(matrix)
        grad_bias = torch.empty(matrix.shape[0], dtype=g.dtype, device=g.device)
        shared_rows = rows(shared) if shared is not None else None
        task_rows = rows(stacked).chunk(tasks) if stacked is not None else [None] * tasks
        grad_shared = (
            torch.empty_like(shared_rows) if shared is not None and ctx.needs_input_grad[0] else None
        )
        grad_stacked = (
            torch.empty_like(rows(stacked)) if stacked is not None and ctx.needs_input_grad[1] else None
        )
        grad_task_rows = grad_stacked.chunk(tasks) if grad_stacked is not None else [None] * tasks
        for t, (x, g_t, gx) in enumerate(zip(task_rows, g.chunk(tasks), grad_task_rows, strict=True)):
            block = slice(t * out_size, (t + 1) * out_size)
            torch.sum(g_t, 0, out=grad_bias[block])
            if shared_rows is not None:
                torch.mm(g_t.t(), shared_rows, out=grad_weight[block, :split])
                if grad_shared is not None and t == 0:
                    torch.mm(g_t, matrix[block, :split], out=grad_shared)
                elif grad_shared is not None:
                    torch.addmm(grad_shared, g_t, matrix[block, :split], out=grad_shared)
            if x is not None:
                torch.mm(g_t.t(), x, out=grad_weight[block, split:])
                if gx is not None:
                    torch.mm(g_t, matrix[block, split:], out=gx)
        if grad_shared is not None:
            grad_shared = unrows(grad_shared, shared.shape[0], *shared.shape[2:])
        if grad_stacked is not None:
            grad_stacked = unrows(grad_stacked, stacked.shape[0], *stacked.shape[2:])
        grad_weight = grad_weight.view(weight.shape).to(weight.dtype)
        return grad_shared, grad_stacked, grad_weight, grad_bias.to(weight.dtype), None


def task_linear(conv: TaskConv2d, shared: torch.Tensor | None, stacked: torch.Tensor | None) -> torch.Tensor:
    """The 1x1 `TaskConv2d` on channels-last input; task t's conv sees concat(shared, task t's block).

    `shared` (N,C_s,H,W) is the same for all tasks, `stacked` (T*N,C_t,H,W) holds each task's own input;
    either may be None. Returns (T*N,C_out,H,W), task t's output in its block. Under `torch.compile`
    (which cannot trace the strided in-place products) it is written as plain products, concatenated.
    """
    if not torch.compiler.is_compiling():
        return _TaskLinear.apply(shared, stacked, conv.weight, conv.bias, conv.tasks)
    blocks = stacked.chunk(conv.tasks) if stacked is not None else [None] * conv.tasks
    outputs = []
    for t, x in enumerate(blocks):
        weight, bias = conv.task_parameters(t)
        weight = weight.flatten(1)
        if shared is None:
            outputs.append(F.linear(rows(x), weight, bias))
            continue
        y = F.linear(rows(shared), weight[:, : shared.shape[1]], bias)
        outputs.append(y if x is None else y + F.linear(rows(x), weight[:, shared.shape[1] :]))
    batch = stacked.shape[0] if stacked is not None else conv.tasks * shared.shape[0]
    size = (stacked if stacked is not None else shared).shape[2:]
    return unrows(torch.cat(outputs), batch, *size)


class _TimesShared(torch.autograd.Function):
    """Each task's block of `stacked` times the same `shared`, with gradients kept channels-last (the
    autograd of a broadcast product would sum the shared gradient into the contiguous layout)."""

    @staticmethod
    def forward(ctx, stacked, shared, tasks):  # noqa: ANN001, ANN205 (autograd signature)
        ctx.save_for_backward(stacked, shared)
        ctx.tasks = tasks
        return (stacked.unflatten(0, (tasks, -1)) * shared).flatten(0, 1)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205 (autograd signature)
        stacked, shared = ctx.saved_tensors
        grad = channels_last(grad)
        grad_stacked = grad_shared = None
        if ctx.needs_input_grad[0]:
            grad_stacked = (grad.unflatten(0, (ctx.tasks, -1)) * shared).flatten(0, 1)
        if ctx.needs_input_grad[1]:
            grad_shared = torch.empty_like(shared)
            for t, (g_t, x_t) in enumerate(zip(grad.chunk(ctx.tasks), stacked.chunk(ctx.tasks), strict=True)):
                if t == 0:
                    torch.mul(g_t, x_t, out=grad_shared)
                else:
                    grad_shared.addcmul_(g_t, x_t)
        return grad_stacked, grad_shared, None


def times_shared(stacked: torch.Tensor, shared: torch.Tensor, tasks: int) -> torch.Tensor:
    """Each task's block (N,C,H,W) of `stacked` times the same `shared` (N,C,H,W): the attention product."""
    if torch.compiler.is_compiling():
        return (stacked.unflatten(0, (tasks, -1)) * shared).flatten(0, 1)
    return _TimesShared.apply(stacked, shared, tasks)


class _BatchNormPerTask(torch.autograd.Function):
    """Training-mode batch norm of each task's block with its own batch statistics, one native call per
    block writing in place; parameters either per task (T*C) or shared (C)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, tasks, momentum, eps):  # noqa: ANN001, ANN205
        channels = x.shape[1]
        out = torch.empty_like(x)
        stats = torch.empty(2, tasks, channels, dtype=weight.dtype, device=x.device)
        for t, (x_t, out_t) in enumerate(zip(x.chunk(tasks), out.chunk(tasks), strict=True)):
            p = slice(t * channels, (t + 1) * channels) if weight.numel() != channels else slice(None)
            torch.ops.aten.native_batch_norm.out(
                x_t, weight[p], bias[p], running_mean[p], running_var[p], True, momentum, eps,
                out=out_t, save_mean=stats[0, t], save_invstd=stats[1, t],
            )  # fmt: skip
        ctx.save_for_backward(x, weight, stats)
        ctx.tasks, ctx.eps = tasks, eps
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205 (autograd signature)
        x, weight, stats = ctx.saved_tensors
        tasks, channels = ctx.tasks, x.shape[1]
        grad = (
            channels_last(grad) if x.is_contiguous(memory_format=torch.channels_last) else grad.contiguous()
        )
        grad_x = torch.empty_like(x)
        grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(weight)
        for t, (x_t, g_t, gx_t) in enumerate(
            zip(x.chunk(tasks), grad.chunk(tasks), grad_x.chunk(tasks), strict=True)
        ):
            p = slice(t * channels, (t + 1) * channels) if weight.numel() != channels else slice(None)
            _, gw, gb = torch.ops.aten.native_batch_norm_backward.out(
                g_t, x_t, weight[p], None, None, stats[0, t], stats[1, t], True, ctx.eps, [True, True, True],
                out0=gx_t, out1=torch.empty_like(weight[p]), out2=torch.empty_like(weight[p]),
            )  # fmt: skip
            grad_weight[p] += gw
            grad_bias[p] += gb
        return grad_x, grad_weight, grad_bias, None, None, None, None, None


def batch_norm_per_task(bn: nn.BatchNorm2d, stacked: torch.Tensor, tasks: int) -> torch.Tensor:
    """`bn` applied to each task's block of `stacked` in turn, each with its own batch statistics.

    `bn` holds either one set of C channels shared by all tasks, or T*C channels, task t's in block t.
    A shared `bn` ends with the running statistics of T sequential calls, r <- (1-m) r + m s_t.
    """
    channels = stacked.shape[1]
    shared = bn.num_features == channels
    if bn.training:
        bn.num_batches_tracked.add_(tasks if shared else 1)
        if not torch.compiler.is_compiling():
            return _BatchNormPerTask.apply(
                stacked, bn.weight, bn.bias, bn.running_mean, bn.running_var, tasks, bn.momentum, bn.eps
            )
    elif shared:
        return F.batch_norm(stacked, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    # One call per block: in eval mode with per-task parameters, and under torch.compile (which cannot
    # trace the in-place native calls and fuses the concatenation itself).
    blocks = []
    for t, block in enumerate(stacked.chunk(tasks)):
        p = slice(None) if shared else slice(t * channels, (t + 1) * channels)
        blocks.append(
            F.batch_norm(
                block, bn.running_mean[p], bn.running_var[p], bn.weight[p], bn.bias[p], bn.training,
                bn.momentum, bn.eps,
            )
        )  # fmt: skip
    return channels_last(torch.cat(blocks))


def shared_conv_bn_relu(layer: nn.Sequential, stacked: torch.Tensor, tasks: int) -> torch.Tensor:
    """A conv+BN+ReLU layer shared by all tasks on every task's block at once: one conv over the T*N
    batch, then batch norm with per-task statistics (`batch_norm_per_task`)."""
    conv, bn, _ = layer
    return batch_norm_per_task(bn, conv(stacked), tasks).relu_()
