"""The study's commands on bad input: one line naming the file or flag, exit 2, nothing written changed."""

from __future__ import annotations

import pytest

import study.capacity
from mtan.errors import UserError
from study import reproduce
from study.capacity import check_trial_fits
from tests.bad_input import refused, snapshot
from tests.conftest import WORKER_CPUS


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{"config": {"lr": 0.', "best_config.json: not valid JSON (Expecting ',' delimiter, line 1)"),
        ("", "best_config.json: not valid JSON (Expecting value, line 1)"),
        ('{"trial_id": "x"}', "best_config.json: expected a JSON object with the best trial's config"),
        ('{"config": {"lr": "fast"}}', "best_config.json: lr must be a number, got 'fast'"),
        ('{"config": {"batch_size": 1.5}}', "best_config.json: batch_size must be an integer, got 1.5"),
    ],
)
def test_reproduce_refuses_a_broken_best_config(tmp_path, capsys, text, line):
    (tmp_path / "best_config.json").write_text(text)
    before = snapshot(tmp_path)
    code, error = refused(reproduce.main, [str(tmp_path)], capsys)
    assert (code, error) == (2, f"error: {tmp_path}/{line}")
    assert snapshot(tmp_path) == before


def test_a_trial_larger_than_any_node_of_a_fixed_cluster_is_refused(ray_cluster):
    check_trial_fits(WORKER_CPUS, 0)
    # the session's cluster has two 1-CPU nodes: two CPUs in all, but never on one node
    with pytest.raises(UserError) as too_many_cpus:
        check_trial_fits(2 * WORKER_CPUS, 0)
    assert str(too_many_cpus.value) == (
        "--cpus-per-trial 2: no node of this Ray cluster has 2 CPUs (the largest has 1), "
        "and it has no autoscaler to add one"
    )
    with pytest.raises(
        UserError, match=r"^--gpus-per-trial 0.5: no node .* has 0.5 GPUs \(the largest has 0\)"
    ):
        check_trial_fits(1, 0.5)


def test_a_cluster_with_an_autoscaler_may_grow_to_fit(ray_cluster, tmp_path, monkeypatch):
    launcher_config = tmp_path / "ray_bootstrap_config.yaml"
    launcher_config.write_text("cluster_name: x\n")
    monkeypatch.setattr(study.capacity, "AUTOSCALER_CONFIG", launcher_config)
    check_trial_fits(100, 8)
