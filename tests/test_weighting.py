"""Weighting methods against their formulas."""

import math

import pytest
import torch

from mtan.config import make_config
from mtan.errors import ConfigError
from mtan.weighting import WEIGHTINGS, DynamicWeightAverage, make_weighting


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
    assert set(WEIGHTINGS) == {"equal", "dwa", "uncertainty"}
    with pytest.raises(ConfigError, match="unknown weighting 'gradnorm'"):
        make_weighting("gradnorm", ["a"])
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        make_config(temperature=0.0)  # each method's hyperparameters are checked with the config
    assert make_weighting("dwa", ["a"], {"temperature": 0.5, "lr": 1.0}).temperature == 0.5
