"""The networks: parameter parity with the official SegNet-MTAN and single-task SegNet, shapes, backbones,
width and init, and which one a config builds."""

import dataclasses

import pytest
import torch
from torch import nn

from mtan import MTAN
from mtan.config import TrainConfig, make_config
from mtan.errors import ConfigError
from mtan.model import INITS, SingleTaskSegNet, make_model


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


def test_the_inits_a_config_accepts_are_the_networks_and_another_is_named():
    (init,) = [f for f in dataclasses.fields(TrainConfig) if f.name == "init"]
    assert init.metadata["choices"] == tuple(INITS) == ("xavier", "kaiming")
    with pytest.raises(ConfigError, match=r"^unknown init 'orthogonal'; choose one of xavier, kaiming$"):
        MTAN({"segmentation": 7}, width=0.0625, init="orthogonal")


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        MTAN({"segmentation": 7}, backbone="vgg")


@pytest.mark.parametrize(
    ("task", "channels", "expected"),
    [
        ("segmentation", 7, 24_980_679),  # official model_segnet_single.py, CityScapes 7 classes
        ("depth", 1, 24_980_289),  # the same, depth
        ("segmentation", 13, 24_981_069),  # the count that file divides by (NYUv2's 13 classes)
    ],
)
def test_single_task_parameter_count_matches_the_official_implementation(task, channels, expected):
    assert count_parameters(SingleTaskSegNet(task, channels, backbone="segnet", width=1.0)) == expected


def test_single_task_network_is_mtans_segnet_with_one_head_and_no_attention():
    mtan = MTAN({"segmentation": 7, "depth": 1}, width=0.125)
    single = SingleTaskSegNet("depth", 1, width=0.125)
    shared = {k: v for k, v in mtan.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    own = single.state_dict()
    # the same SegNet (names and shapes); besides it only the head, 3x3 conv then 1x1 conv
    assert sorted(set(own) - set(shared)) == ["head.0.bias", "head.0.weight", "head.1.bias", "head.1.weight"]
    assert all(own[k].shape == v.shape for k, v in shared.items())
    assert [(m.kernel_size, m.out_channels) for m in single.head] == [((3, 3), 8), ((1, 1), 1)]
    # with MTAN's SegNet weights, the output is the head on MTAN's last shared decoder output
    single.load_state_dict({**own, **shared})
    x = torch.rand(2, 3, 32, 64)
    out = single(x)
    assert list(out) == ["depth"] and out["depth"].shape == (2, 1, 32, 64)
    torch.testing.assert_close(out["depth"], single.head(mtan.shared_features(x).decoded[-1]))


def test_single_task_network_takes_the_backbone_width_and_init():
    basic = SingleTaskSegNet("segmentation", 7, backbone="segnet-basic", width=0.125, init="kaiming")
    assert count_convs(basic.encoder, 3) == 5 and count_convs(basic.decoder, 3) == 5
    assert [level.first[0].out_channels for level in basic.decoder] == [64, 32, 16, 8, 8]
    assert basic(torch.rand(1, 3, 32, 32))["segmentation"].shape == (1, 7, 32, 32)
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        SingleTaskSegNet("depth", 1, backbone="vgg")


def test_a_config_builds_mtan_on_every_task_or_the_single_task_network_of_its_task():
    multi = make_model(make_config("cpu", width=0.0625), 7)
    assert isinstance(multi, MTAN) and multi.tasks == {"segmentation": 7, "depth": 1}
    for task, channels in (("segmentation", 19), ("depth", 1)):
        single = make_model(make_config("cpu", width=0.0625, labels=19, single_task=task), 19)
        assert isinstance(single, SingleTaskSegNet) and single.tasks == {task: channels}
    with pytest.raises(
        ConfigError, match="^unknown single task 'normal'; choose one of segmentation, depth$"
    ):
        make_config("cpu", single_task="normal")
