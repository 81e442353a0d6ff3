"""The network: parameter parity with the official SegNet-MTAN, shapes, backbones, width and init."""

import pytest
import torch
from torch import nn

from mtan import MTAN
from mtan.errors import ConfigError


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (as the official repo counts them)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ({"segmentation": 13, "depth": 1, "normal": 3}, 44_229_073),  # official count, NYUv2 tasks
        ({"segmentation": 7, "depth": 1}, 41_206_984),  # official count, CityScapes tasks
    ],
)
def test_parameter_count_matches_the_official_implementation(tasks, expected):
    assert count_parameters(MTAN(tasks, backbone="segnet", width=1.0)) == expected


def test_forward_returns_one_output_per_task_at_input_resolution():
    model = MTAN({"segmentation": 7, "depth": 1, "edges": 2}, width=0.0625)
    out = model(torch.rand(2, 3, 64, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "segmentation": (2, 7, 64, 128),
        "depth": (2, 1, 64, 128),
        "edges": (2, 2, 64, 128),
    }


def count_convs(module: nn.Module, kernel: int) -> int:
    return sum(1 for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (kernel, kernel))


def test_segnet_basic_has_one_conv_per_level():
    basic = MTAN({"segmentation": 7, "depth": 1}, backbone="segnet-basic", width=0.125)
    full = MTAN({"segmentation": 7, "depth": 1}, backbone="segnet", width=0.125)
    assert count_convs(basic.encoder, 3) == 5 and count_convs(basic.decoder, 3) == 5
    assert count_convs(full.encoder, 3) == 13 and count_convs(full.decoder, 3) == 13


def test_width_scales_every_channel_count():
    model = MTAN({"segmentation": 7, "depth": 1}, width=0.25)
    assert [level.first[0].out_channels for level in model.encoder] == [16, 32, 64, 128, 128]
    assert [level.first[0].out_channels for level in model.decoder] == [128, 64, 32, 16, 16]


@pytest.mark.parametrize("init", ["xavier", "kaiming"])
def test_init_sets_batch_norm_to_identity_and_conv_bias_to_zero(init):
    torch.manual_seed(0)
    model = MTAN({"segmentation": 7, "depth": 1}, width=0.25, init=init)
    conv = model.encoder[3].first[0]
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, nn.Conv2d):
            assert torch.all(m.bias == 0)
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    expected = (2 / (fan_in + fan_out)) ** 0.5 if init == "xavier" else (2 / fan_in) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        MTAN({"segmentation": 7}, backbone="vgg")
