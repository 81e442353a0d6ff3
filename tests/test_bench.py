"""The benchmark: its command line and JSON, and its FLOP count against a hand count."""

import json

import pytest
import torch
from torch import nn

from mtan import MTAN
from mtan.bench import MATRIX_OPS, main, random_batch, training_flops
from mtan.config import make_config
from mtan.errors import ConfigError
from mtan.reference import PerTaskMTAN

KEYS = {
    "step_s_median",
    "images_per_s",
    "model_flops_per_image",
    "model_flops_per_s",
    "gemm_flops_per_s",
    "mfu",
    "peak_mem_bytes",
    "loader_images_per_s",
    "config",
}


def test_the_command_writes_every_figure_to_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--size", "32x64", "--width", "0.0625", "--batch-size", "2", "--steps", "2", "--warmup", "1"]
    assert (
        main(
            [
                *argv,
                *("--threads", "1", "--compare", "--reference-format", "channels_last", "--breakdown"),
                *("--json", str(out)),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert KEYS <= set(result)
    assert {"reference_step_s_median", "reference_mfu", "speedup"} <= set(result)
    assert result["config"]["image_height"] == 32 and result["config"]["batch_size"] == 2
    assert result["reference_format"] == "channels_last"
    assert len(result["step_s_all"]) == 2
    assert result["mfu"] == pytest.approx(result["model_flops_per_s"] / result["gemm_flops_per_s"])
    assert result["images_per_s"] == pytest.approx(2 / result["step_s_median"])
    assert all(result[key] > 0 for key in KEYS - {"config"})
    step_flops = result["model_flops_per_image"] * 2
    for name in ("breakdown", "reference_breakdown"):
        breakdown = result[name]
        # the convolutions and products were found, and take part of the step, not all of it
        assert 0 < breakdown["matrix_ops_share"] < 1
        assert breakdown["mfu_matrix_ops"] == pytest.approx(
            step_flops / breakdown["matrix_ops_s"] / result["gemm_flops_per_s"]
        )
        assert breakdown["top_other_ops_s"] and not set(breakdown["top_other_ops_s"]) & MATRIX_OPS
    printed = capsys.readouterr().out
    assert "mfu" in printed and "reference breakdown" in printed


def test_the_breakdown_is_refused_off_the_cpu():
    with pytest.raises(ConfigError, match="--device cpu"):
        main(["--device", "cuda", "--breakdown"])


class TwoConvs(nn.Module):
    """A 3x3 conv from the image, then a 1x1 conv per task: small enough to count by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.heads = nn.ModuleDict({"segmentation": nn.Conv2d(4, 7, 1), "depth": nn.Conv2d(4, 1, 1)})

    def forward(self, x):
        h = self.features(x)
        return {task: head(h) for task, head in self.heads.items()}


def test_flop_count_matches_a_hand_count():
    config = make_config("cpu", image_height=32, image_width=32, labels=7)
    batch = random_batch(config, batch_size=2, device=torch.device("cpu"))
    pixels = 2 * 32 * 32
    conv3x3 = 2 * pixels * 4 * 3 * 9  # multiply-adds of the 3x3 conv, 2 FLOPs each
    heads = 2 * pixels * 4 * (7 + 1)
    # backward: the 3x3 conv needs only its weight gradient (the images need none), the heads need both
    # weight and input gradients, each as many FLOPs as the forward product
    assert training_flops(TwoConvs(), batch) == (conv3x3 + heads) + conv3x3 + 2 * heads


@pytest.mark.parametrize("backbone", ["segnet", "segnet-basic"])
def test_the_fast_network_does_exactly_the_reference_flops(backbone):
    config = make_config("cpu", image_height=32, image_width=64)
    batch = random_batch(config, batch_size=2, device=torch.device("cpu"))
    model = MTAN({"segmentation": 7, "depth": 1}, backbone=backbone, width=0.125)
    fast = training_flops(model, batch)
    reference = training_flops(PerTaskMTAN(model), batch)
    assert fast == reference > 0
