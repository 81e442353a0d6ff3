"""`python -m study.reproduce`: the best config again on new seeds, and the mean +/- std table."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from mtan.errors import UserError
from mtan.metrics import METRIC_KEYS
from mtan.train import read_metrics
from study.reproduce import main


def test_reproduce_writes_seed_runs_and_a_summary(finished_study, capsys):
    best = json.loads((finished_study / "best_config.json").read_text())
    assert main([str(finished_study), "--seeds", "2"]) == 0
    out = finished_study / "reproduce"
    seeds = pd.read_csv(out / "seeds.csv")
    first = best["config"]["seed"] + 1
    assert list(seeds["seed"]) == [first, first + 1]
    assert (seeds["epochs"] == best["config"]["epochs"]).all()  # the full epoch budget
    for seed in seeds["seed"]:
        run = out / f"seed_{seed}"
        config = json.loads((run / "config.json").read_text())
        assert {k: v for k, v in config.items() if k not in ("seed", "device", "num_threads")} == {
            k: v for k, v in best["config"].items() if k not in ("seed", "device", "num_threads")
        }
        last = read_metrics(run)[-1]
        row = seeds[seeds["seed"] == seed].iloc[0]
        assert all(math.isclose(row[k], last[k]) for k in METRIC_KEYS)
    assert seeds["miou"].nunique() == 2  # different seeds, different runs

    summary = pd.read_csv(out / "summary.csv").set_index("metric")
    for key in METRIC_KEYS:
        a, b = seeds[key]
        assert math.isclose(summary.loc[key, "mean"], (a + b) / 2)
        assert math.isclose(summary.loc[key, "std"], abs(a - b) / math.sqrt(2), abs_tol=1e-12)
    printed = capsys.readouterr().out
    assert f"{summary.loc['miou', 'mean']:.4f} +/- {summary.loc['miou', 'std']:.4f}" in printed


def test_a_folder_without_a_finished_study_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="best_config.json: not found"):
        main([str(tmp_path)])
