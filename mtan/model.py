"""MTAN: a shared SegNet with one soft-attention network per task (Liu, Johns, Davison, CVPR 2019).

Architecture of the official SegNet-MTAN (lorenmt/mtan, im2im_pred/model_segnet_mtan.py; DESIGN.md):
- shared encoder, five levels of 3x3 conv+BN+ReLU layers, max-pool with indices; a mirrored decoder
  with max-unpool;
- per task and level an attention mask a = sigmoid(BN(conv1x1(relu(BN(conv1x1(input)))))) (Sec. 3.1,
  Eq. 1 and 2) that multiplies the level's last shared output;
  encoder input: concat(first conv output of the level, previous attention output), then a 3x3
  conv+BN+ReLU shared by all tasks and a max-pool; decoder: bilinear x2 upsampling of the previous
  attention output, a shared 3x3 conv+BN+ReLU, mask from concat(unpooled decoder input, that output);
- per task a head: 3x3 conv then 1x1 conv.

The network is generic over tasks: ``MTAN({"segmentation": 7, "depth": 1})`` returns a dict of task name
to output (segmentation logits, raw depth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mtan.errors import ConfigError


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


def attention_mask(in_channels: int, channels: int) -> nn.Sequential:
    """The task-specific attention module g (Eq. 1/2): 1x1 conv-BN-ReLU, 1x1 conv-BN-sigmoid."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel_size=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, kernel_size=1),
        nn.BatchNorm2d(channels),
        nn.Sigmoid(),
    )


def prediction_head(channels: int, out_channels: int) -> nn.Sequential:
    """A task head: 3x3 conv then 1x1 conv, no normalisation between them (official)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        nn.Conv2d(channels, out_channels, kernel_size=1),
    )


class ConvLevel(nn.Module):
    """One SegNet level: a first conv (its output feeds the encoder masks) and the remaining convs."""

    def __init__(self, in_channels: int, out_channels: int, layers: int) -> None:
        super().__init__()
        self.first = conv_bn_relu(in_channels, out_channels)
        self.rest = nn.Sequential(*(conv_bn_relu(out_channels, out_channels) for _ in range(layers - 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.first(x)
        return first, self.rest(first)


class MTAN(nn.Module):
    """Multi-Task Attention Network over a shared SegNet, generic over a mapping task -> channels."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str = "segnet",
        width: float = 1.0,
        init: str = "xavier",
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        if not tasks:
            raise ConfigError("MTAN needs at least one task")
        spec = BACKBONES[backbone]
        widths = [max(1, round(c * width)) for c in spec.widths]
        levels = len(widths)
        self.tasks = dict(tasks)

        encoder_in = [3, *widths[:-1]]
        # Decoder level j (bottom-up) restores encoder level levels-1-j; it outputs the width of the level
        # above it (the first level keeps its own width), and its input is the previous level's output.
        decoder_out = [widths[max(levels - 2 - j, 0)] for j in range(levels)]
        decoder_in = [widths[-1], *decoder_out[:-1]]
        shared_encoder_out = [widths[min(level + 1, levels - 1)] for level in range(levels)]

        self.encoder = nn.ModuleList(
            ConvLevel(encoder_in[i], widths[i], spec.encoder_layers[i]) for i in range(levels)
        )
        self.decoder = nn.ModuleList(
            ConvLevel(decoder_in[j], decoder_out[j], spec.decoder_layers[j]) for j in range(levels)
        )
        self.encoder_attention_conv = nn.ModuleList(
            conv_bn_relu(widths[i], shared_encoder_out[i]) for i in range(levels)
        )
        decoder_attention_in = [shared_encoder_out[-1], *decoder_out[:-1]]
        self.decoder_attention_conv = nn.ModuleList(
            conv_bn_relu(decoder_attention_in[j], decoder_out[j]) for j in range(levels)
        )
        self.encoder_masks = nn.ModuleDict(
            {
                task: nn.ModuleList(
                    attention_mask(widths[i] if i == 0 else 2 * widths[i], widths[i]) for i in range(levels)
                )
                for task in tasks
            }
        )
        self.decoder_masks = nn.ModuleDict(
            {
                task: nn.ModuleList(
                    attention_mask(decoder_in[j] + decoder_out[j], decoder_out[j]) for j in range(levels)
                )
                for task in tasks
            }
        )
        self.heads = nn.ModuleDict(
            {task: prediction_head(decoder_out[-1], channels) for task, channels in tasks.items()}
        )
        initialise(self, init)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a batch of images (N,3,H,W) to a dict task -> output (N,C_task,H,W)."""
        firsts, lasts, indices = [], [], []
        h = x
        for level in self.encoder:
            first, last = level(h)
            h, index = F.max_pool2d(last, kernel_size=2, stride=2, return_indices=True)
            firsts.append(first)
            lasts.append(last)
            indices.append(index)
        unpooled, decoded = [], []
        for level, index in zip(self.decoder, reversed(indices), strict=True):
            up = F.max_unpool2d(h, index, kernel_size=2, stride=2)
            _, h = level(up)
            unpooled.append(up)
            decoded.append(h)

        outputs = {}
        for task in self.tasks:
            a = None
            for i, (mask, conv) in enumerate(
                zip(self.encoder_masks[task], self.encoder_attention_conv, strict=True)
            ):
                mask_input = firsts[i] if a is None else torch.cat((firsts[i], a), dim=1)
                a = F.max_pool2d(conv(mask(mask_input) * lasts[i]), kernel_size=2, stride=2)
            for j, (mask, conv) in enumerate(
                zip(self.decoder_masks[task], self.decoder_attention_conv, strict=True)
            ):
                shared = conv(F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True))
                a = mask(torch.cat((unpooled[j], shared), dim=1)) * decoded[j]
            outputs[task] = self.heads[task](a)
        return outputs


def initialise(module: nn.Module, init: str) -> None:
    """Conv weights xavier-normal (official) or He-normal (seed report), conv bias 0; BN weight 1, bias 0."""
    if init not in ("xavier", "kaiming"):
        raise ConfigError(f"unknown init {init!r}; choose xavier or kaiming")
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if init == "xavier":
                nn.init.xavier_normal_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
