"""Weighting methods against their formulas."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtan.config import make_config
from mtan.data import iterate_batches, load_data
from mtan.errors import ConfigError
from mtan.train import Run
from mtan.weighting import WEIGHTINGS, DynamicWeightAverage, make_weighting
from tests.tiny_data import tiny_config, write_tiny_set


def dwa_formula(history, temperature):
    """MTAN Eq. 3 written out for two tasks."""
    if len(history) < 2:
        return [1.0, 1.0]
    w = [history[-1][k] / history[-2][k] for k in range(2)]
    e = [math.exp(x / temperature) for x in w]
    return [2 * x / sum(e) for x in e]


def test_dwa_follows_the_formula_over_several_epochs():
    losses = [(2.0, 0.5), (1.5, 0.45), (1.0, 0.44), (0.9, 0.30), (0.85, 0.29)]
    dwa = make_weighting("dwa", ["segmentation", "depth"], {"temperature": 2.0})
    history = []
    for seg, depth in losses:
        expected = dwa_formula(history, 2.0)
        got = dwa.weights()
        assert [got["segmentation"], got["depth"]] == pytest.approx(expected, rel=1e-12)
        dwa.end_epoch({"segmentation": seg, "depth": depth})
        history.append((seg, depth))
    assert dwa.weights()["depth"] > 1.0  # depth's loss fell more slowly in the last epoch, so it gains weight


def test_dwa_history_survives_a_state_dict_round_trip():
    dwa = DynamicWeightAverage(["a", "b"], temperature=0.5)
    for epoch in ({"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 1.9}, {"a": 0.4, "b": 1.0}):
        dwa.end_epoch(epoch)
    restored = DynamicWeightAverage(["a", "b"], temperature=0.5)
    restored.load_state_dict(dwa.state_dict())
    assert restored.history == dwa.history and restored.weights() == dwa.weights()


def test_equal_weighting_sums_the_losses():
    losses = {"a": torch.tensor(1.5), "b": torch.tensor(0.25)}
    assert make_weighting("equal", ["a", "b"]).combine(losses).item() == pytest.approx(1.75)


def test_uncertainty_weighting_follows_kendall_et_al():
    weighting = make_weighting("uncertainty", ["a", "b"])
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.5, -1.0]))
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(0.3)}
    expected = 0.5 * math.exp(-0.5) * 2.0 + 0.25 + 0.5 * math.exp(1.0) * 0.3 - 0.5
    assert weighting.combine(losses).item() == pytest.approx(expected, rel=1e-6)
    assert sum(1 for _ in weighting.parameters()) == 1


def test_uncertainty_weighting_starts_at_the_official_log_variance():
    # official code: logsigma = [-0.5, -0.5, -0.5]; loss_k = 1 / (2 exp(logsigma_k)) L_k + logsigma_k / 2
    weighting = make_weighting("uncertainty", ["a", "b"])
    assert weighting.log_variance.tolist() == [-0.5, -0.5]
    assert weighting.weights() == pytest.approx({"a": 0.5 * math.exp(0.5), "b": 0.5 * math.exp(0.5)})
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(0.3)}
    official = sum(1 / (2 * math.exp(-0.5)) * loss + -0.5 / 2 for loss in (2.0, 0.3))
    assert weighting.combine(losses).item() == pytest.approx(official, rel=1e-6)


def test_registry_and_bad_names():
    assert set(WEIGHTINGS) == {"equal", "dwa", "uncertainty", "scalarization"}
    with pytest.raises(ConfigError, match="unknown weighting 'gradnorm'"):
        make_weighting("gradnorm", ["a"])
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        make_config(temperature=0.0)  # each method's hyperparameters are checked with the config
    assert make_weighting("dwa", ["a"], {"temperature": 0.5, "lr": 1.0}).temperature == 0.5


def test_scalarization_weights_follow_the_formula_for_a_hand_picked_share():
    # w = 0.8: lambda_seg = 2 (1 - 0.8) = 0.4, lambda_depth = 2 * 0.8 = 1.6
    weighting = make_weighting("scalarization", ["segmentation", "depth"], {"depth_share": 0.8})
    assert weighting.weights() == pytest.approx({"segmentation": 0.4, "depth": 1.6}, rel=1e-12)
    losses = {"segmentation": torch.tensor(1.25), "depth": torch.tensor(0.5)}
    assert weighting.combine(losses).item() == pytest.approx(0.4 * 1.25 + 1.6 * 0.5, rel=1e-6)
    assert make_weighting("scalarization", ["depth", "segmentation"]).weights() == {
        "segmentation": 1.0,
        "depth": 1.0,
    }  # the default share is 0.5, whatever the order of the tasks


def test_scalarization_needs_a_share_in_the_open_interval_and_the_two_tasks():
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ConfigError, match=rf"^depth_share must be in \(0, 1\), got {bad}$"):
            make_config(weighting="scalarization", depth_share=bad)
    assert make_config(weighting="scalarization", depth_share=0.99).depth_share == 0.99
    with pytest.raises(ConfigError, match="scalarization weighs the tasks segmentation and depth"):
        make_weighting("scalarization", ["segmentation", "depth", "normal"])
    with pytest.raises(ConfigError, match="got the tasks depth$"):
        make_weighting("scalarization", ["depth"])


@pytest.fixture
def one_thread():
    """One torch thread, as `mtan.train.train` sets from the tiny config (on a busy machine, more threads
    make each step many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train_steps(config, data, epochs=2):
    """The per-step losses and the final parameters and buffers of `epochs` epochs of the real training
    step (`mtan.train.Run.step`, fused Adam included) on `data`."""
    run = Run(config, data.num_classes, torch.device("cpu"))
    losses = []
    for _ in range(epochs):
        for batch in iterate_batches(data.train, config.batch_size, run.device, run.shuffle):
            losses.append(run.step(batch))
    return losses, run.model.state_dict()


def test_scalarization_at_an_even_share_trains_exactly_as_equal_weighting(tmp_path, one_thread):
    root = write_tiny_set(tmp_path, train=6, val=2)
    equal = tiny_config(root, weighting="equal", seed=3)
    data = load_data(equal)
    equal_losses, equal_state = _train_steps(equal, data)
    even_losses, even_state = _train_steps(tiny_config(root, weighting="scalarization", seed=3), data)
    assert len(equal_losses) == 4  # 2 epochs of 2 batches (4 + 2 images)
    for a, b in zip(equal_losses, even_losses, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert equal_state.keys() == even_state.keys()
    assert all(torch.equal(equal_state[k], even_state[k]) for k in equal_state)
    # The comparison sees a change of weights: another share trains differently from the first step on.
    tilted_losses, tilted_state = _train_steps(
        tiny_config(root, weighting="scalarization", depth_share=0.6, seed=3), data
    )
    assert torch.equal(tilted_losses[0]["depth"], equal_losses[0]["depth"])  # same init, same batch
    assert not torch.equal(tilted_losses[0]["total"], equal_losses[0]["total"])
    assert not all(torch.equal(equal_state[k], tilted_state[k]) for k in equal_state)


# A registry whose DWA temperature and scalarization share default to other values, before mtan.config is
# imported: the config's defaults must follow.
OTHER_DEFAULTS = """
import dataclasses
import mtan.weighting as w
for method, value in ((w.WEIGHTINGS["dwa"], 3.5), (w.WEIGHTINGS["scalarization"], 0.25)):
    method.hyperparameters = (dataclasses.replace(method.hyperparameters[0], default=value),)
from mtan.config import TrainConfig
print(TrainConfig().temperature, TrainConfig().depth_share)
"""


def test_the_configs_hyperparameter_defaults_are_the_registrys():
    done = subprocess.run(
        [sys.executable, "-c", OTHER_DEFAULTS],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.5", "0.25"]
