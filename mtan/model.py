"""MTAN: a shared SegNet with one soft-attention network per task (Liu, Johns, Davison, CVPR 2019).

Architecture of the official SegNet-MTAN (lorenmt/mtan, im2im_pred/model_segnet_mtan.py; docs/design.md):
- shared encoder, five levels of 3x3 conv+BN+ReLU layers, max-pool with indices; a mirrored decoder
  with max-unpool;
- per task and level an attention mask a = sigmoid(BN(conv1x1(relu(BN(conv1x1(input)))))) (Sec. 3.1,
  Eq. 1 and 2) that multiplies the level's last shared output;
  encoder input: concat(first conv output of the level, previous attention output), then a 3x3
  conv+BN+ReLU shared by all tasks and a max-pool; decoder: bilinear x2 upsampling of the previous
  attention output, a shared 3x3 conv+BN+ReLU, mask from concat(unpooled decoder input, that output);
- per task a head: 3x3 conv then 1x1 conv.

The network is generic over tasks: ``MTAN({"segmentation": 7, "depth": 1})`` returns a dict of task name
to output (segmentation logits, raw depth). For speed the tasks' branches run stacked along channels
(`mtan.stacking`) and tensors are channels-last; `mtan.reference` holds the plain per-task loop over the
same parameters, which computes the same function.

`SingleTaskSegNet` is the paper's "One Task" baseline (official im2im_pred/model_segnet_single.py): the
same SegNet with no attention and one head, for the single-task runs that Delta_m compares against.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mtan.errors import ConfigError
from mtan.stacking import (
    TaskConv2d,
    batch_norm_per_task,
    channels_last,
    rows,
    shared_conv_bn_relu,
    task_linear,
    times_shared,
    unrows,
)
from mtan.tasks import task_channels

if TYPE_CHECKING:
    from mtan.config import TrainConfig


@dataclass(frozen=True)
class BackboneSpec:
    """Channel widths and 3x3 conv layers per level: encoder top-down, decoder bottom-up."""

    widths: tuple[int, ...]
    encoder_layers: tuple[int, ...]
    decoder_layers: tuple[int, ...]


BACKBONES: dict[str, BackboneSpec] = {
    # The official SegNet of MTAN: VGG-16 widths, 2,2,3,3,3 layers down and 3,3,3,2,2 back up.
    "segnet": BackboneSpec((64, 128, 256, 512, 512), (2, 2, 3, 3, 3), (3, 3, 3, 2, 2)),
    # The seed report's reduced SegNet ("SegNet-Basic"): one conv per level, five levels each way.
    "segnet-basic": BackboneSpec((64, 128, 256, 512, 512), (1, 1, 1, 1, 1), (1, 1, 1, 1, 1)),
}


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU: the shared layer of SegNet."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TaskAttention(nn.Module):
    """The attention modules g of all tasks at one level (Eq. 1/2): per task, 1x1 conv-BN-ReLU then 1x1
    conv-BN-sigmoid on concat(an input shared by all tasks, the task's own input); parameters stacked by
    task along channels, activations by task along the batch (`mtan.stacking`)."""

    def __init__(self, tasks: int, shared_channels: int, task_channels: int, channels: int) -> None:
        super().__init__()
        self.tasks = tasks
        self.conv1 = TaskConv2d(tasks, shared_channels + task_channels, channels, 1)
        self.bn1 = nn.BatchNorm2d(tasks * channels)
        self.conv2 = TaskConv2d(tasks, channels, channels, 1)
        self.bn2 = nn.BatchNorm2d(tasks * channels)

    def forward(self, shared: torch.Tensor, stacked: torch.Tensor | None = None) -> torch.Tensor:
        """Every task's mask (T*N,C,H,W) from the shared input (N,C_s,H,W) and the tasks' own inputs
        (T*N,C_t,H,W), or the shared input alone."""
        h = batch_norm_per_task(self.bn1, task_linear(self.conv1, shared, stacked), self.tasks).relu_()
        return batch_norm_per_task(self.bn2, task_linear(self.conv2, None, h), self.tasks).sigmoid_()


class ConvLevel(nn.Module):
    """One SegNet level: a first conv (its output feeds the encoder masks) and the remaining convs."""

    def __init__(self, in_channels: int, out_channels: int, layers: int) -> None:
        super().__init__()
        self.first = conv_bn_relu(in_channels, out_channels)
        self.rest = nn.Sequential(*(conv_bn_relu(out_channels, out_channels) for _ in range(layers - 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.first(x)
        return first, self.rest(first)


@dataclass(frozen=True)
class SharedFeatures:
    """What the attention branches read from the shared SegNet, per level (encoder top-down, decoder
    bottom-up): each encoder level's first and last conv output, each decoder level's unpooled input and
    its output."""

    firsts: list[torch.Tensor]
    lasts: list[torch.Tensor]
    unpooled: list[torch.Tensor]
    decoded: list[torch.Tensor]


class SegNet(nn.Module):
    """The SegNet encoder-decoder of a backbone of `BACKBONES` at a channel `width`: what MTAN shares
    among its tasks and what the single-task network is. Subclasses add their heads (and MTAN its
    attention) and initialise."""

    def __init__(self, backbone: str, width: float) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        spec = BACKBONES[backbone]
        self.widths = [max(1, round(c * width)) for c in spec.widths]
        levels = len(self.widths)
        encoder_in = [3, *self.widths[:-1]]
        # Decoder level j (bottom-up) restores encoder level levels-1-j; it outputs the width of the level
        # above it (the first level keeps its own width), and its input is the previous level's output.
        self.decoder_out = [self.widths[max(levels - 2 - j, 0)] for j in range(levels)]
        self.decoder_in = [self.widths[-1], *self.decoder_out[:-1]]
        self.encoder = nn.ModuleList(
            ConvLevel(encoder_in[i], self.widths[i], spec.encoder_layers[i]) for i in range(levels)
        )
        self.decoder = nn.ModuleList(
            ConvLevel(self.decoder_in[j], self.decoder_out[j], spec.decoder_layers[j]) for j in range(levels)
        )

    def shared_features(self, x: torch.Tensor) -> SharedFeatures:
        """Run the SegNet on images (N,3,H,W)."""
        features = SharedFeatures([], [], [], [])
        indices = []
        h = x
        for level in self.encoder:
            first, last = level(h)
            h, index = F.max_pool2d(last, kernel_size=2, stride=2, return_indices=True)
            features.firsts.append(first)
            features.lasts.append(last)
            indices.append(index)
        for level, index in zip(self.decoder, reversed(indices), strict=True):
            up = F.max_unpool2d(h, index, kernel_size=2, stride=2)
            _, h = level(up)
            features.unpooled.append(up)
            features.decoded.append(h)
        return features


class MTAN(SegNet):
    """Multi-Task Attention Network over a shared SegNet, generic over a mapping task -> channels.

    The task-specific branches of all tasks run together, stacked along channels (`mtan.stacking`);
    `mtan.reference.reference_forward` computes the same function with one loop per task. Parameters and
    activations are channels-last.
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str = "segnet",
        width: float = 1.0,
        init: str = "xavier",
    ) -> None:
        if not tasks:
            raise ConfigError("MTAN needs at least one task")
        super().__init__(backbone, width)
        widths, decoder_in, decoder_out = self.widths, self.decoder_in, self.decoder_out
        levels = len(widths)
        self.tasks = dict(tasks)
        n = len(self.tasks)
        shared_encoder_out = [widths[min(level + 1, levels - 1)] for level in range(levels)]

        self.encoder_attention_conv = nn.ModuleList(
            conv_bn_relu(widths[i], shared_encoder_out[i]) for i in range(levels)
        )
        decoder_attention_in = [shared_encoder_out[-1], *decoder_out[:-1]]
        self.decoder_attention_conv = nn.ModuleList(
            conv_bn_relu(decoder_attention_in[j], decoder_out[j]) for j in range(levels)
        )
        # The first encoder level's masks read only the shared first conv output; later ones read it
        # concatenated with the task's previous attention output.
        self.encoder_masks = nn.ModuleList(
            TaskAttention(n, widths[i], 0 if i == 0 else widths[i], widths[i]) for i in range(levels)
        )
        self.decoder_masks = nn.ModuleList(
            TaskAttention(n, decoder_in[j], decoder_out[j], decoder_out[j]) for j in range(levels)
        )
        # Heads (3x3 conv then 1x1 conv per task): the 3x3 convs stacked, the 1x1 convs one per task since
        # their output widths differ.
        self.head_conv = TaskConv2d(n, decoder_out[-1], decoder_out[-1], 3)
        self.head_out = nn.ModuleDict(
            {task: nn.Conv2d(decoder_out[-1], channels, kernel_size=1) for task, channels in tasks.items()}
        )
        initialise(self, init)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a batch of images (N,3,H,W) to a dict task -> output (N,C_task,H,W)."""
        shared = self.shared_features(channels_last(x))
        n = len(self.tasks)
        a = None  # every task's attention output, stacked along the batch
        for i, (masks, conv) in enumerate(zip(self.encoder_masks, self.encoder_attention_conv, strict=True)):
            masked = times_shared(masks(shared.firsts[i], a), shared.lasts[i], n)
            a = F.max_pool2d(shared_conv_bn_relu(conv, masked, n), kernel_size=2, stride=2)
        for j, (masks, conv) in enumerate(zip(self.decoder_masks, self.decoder_attention_conv, strict=True)):
            up = F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True)
            mask = masks(shared.unpooled[j], shared_conv_bn_relu(conv, up, n))
            a = times_shared(mask, shared.decoded[j], n)
        outputs = {}
        for t, ((task, head), block) in enumerate(zip(self.head_out.items(), a.chunk(n), strict=True)):
            features = F.conv2d(block, *self.head_conv.task_parameters(t), padding=self.head_conv.padding)
            out = F.linear(rows(features), head.weight.flatten(1), head.bias)
            outputs[task] = unrows(out, *block.shape[:1], *block.shape[2:])
        return outputs


class SingleTaskSegNet(SegNet):
    """The paper's "One Task" network (Table 2; official im2im_pred/model_segnet_single.py): the SegNet
    of `MTAN` with no attention and one head, 3x3 conv then 1x1 conv on the last decoder output.

    Same input and output as `MTAN`, with only its task: ``{task: (N,channels,H,W)}`` (segmentation
    logits or raw depth). Channels-last like `MTAN`.
    """

    def __init__(
        self,
        task: str,
        channels: int,
        backbone: str = "segnet",
        width: float = 1.0,
        init: str = "xavier",
    ) -> None:
        super().__init__(backbone, width)
        self.tasks = {task: channels}
        features = self.decoder_out[-1]
        self.head = nn.Sequential(
            nn.Conv2d(features, features, kernel_size=3, padding=1),
            nn.Conv2d(features, channels, kernel_size=1),
        )
        initialise(self, init)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a batch of images (N,3,H,W) to ``{task: output (N,channels,H,W)}``."""
        decoded = self.shared_features(channels_last(x)).decoded[-1]
        (task,) = self.tasks
        return {task: self.head(decoded)}


# A convolution's weight init by name (`TrainConfig.init`): xavier-normal (the official code's) or
# He-normal for ReLU (the seed report's).
INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "xavier": nn.init.xavier_normal_,
    "kaiming": functools.partial(nn.init.kaiming_normal_, nonlinearity="relu"),
}


def initialise(module: nn.Module, init: str) -> None:
    """Conv weights by `INITS[init]`, conv bias 0; BN weight 1, bias 0."""
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, TaskConv2d)):
            # Each task's block of a stacked conv is initialised as the separate conv it stands for.
            for weight in m.weight.chunk(m.tasks) if isinstance(m, TaskConv2d) else (m.weight,):
                INITS[init](weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def make_model(config: TrainConfig, num_classes: int) -> MTAN | SingleTaskSegNet:
    """The network of `config`: MTAN with one head per task of `mtan.tasks` (segmentation into
    `num_classes`), or with ``config.single_task`` the single-task network of that task alone."""
    channels = task_channels(num_classes)
    if config.single_task is not None:
        task = config.single_task
        return SingleTaskSegNet(task, channels[task], config.backbone, config.width, config.init)
    return MTAN(channels, config.backbone, config.width, config.init)
