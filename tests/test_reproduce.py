"""`python -m study.reproduce`: the best config again on fresh seeds; with --top K the K best trials and
both published configurations, paired on the same seeds, with intervals and comparisons."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from mtan.errors import UserError
from mtan.metrics import METRIC_KEYS
from mtan.run_folder import CHECKPOINT_FILE, read_metrics
from study.reproduce.cli import main

SUMMARY_COLUMNS = ["config", "metric", "mean", "std", "ci_low", "ci_high", "n"]
COMPARISON_COLUMNS = ["comparison", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "n"]
T_975_DF1 = 12.706205  # Student t, 1 degree of freedom: tan(pi * 0.475)


def varying(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("seed", "device", "num_threads")}


def test_the_tabulated_quantile():
    assert math.tan(math.pi * 0.475) == pytest.approx(T_975_DF1, abs=1e-6)


def test_reproduce_writes_seed_runs_and_a_summary(finished_study, capsys):
    best = json.loads((finished_study / "best_config.json").read_text())
    trials = pd.read_csv(finished_study / "results.csv")
    assert main([str(finished_study), "--seeds", "2"]) == 0
    out = finished_study / "reproduce"
    seeds = pd.read_csv(out / "seeds.csv")
    first = best["config"]["seed"] - best["trial"] + len(trials)  # after every seed the study used
    assert list(seeds["seed"]) == [first, first + 1]
    assert (seeds["epochs"] == best["config"]["epochs"]).all()  # the full epoch budget
    [name] = seeds["config"].unique()
    assert pd.read_csv(out / "configs.csv")["trial"].tolist() == [best["trial"]]
    for seed in seeds["seed"]:
        run = out / name / f"seed_{seed}"
        assert varying(json.loads((run / "config.json").read_text())) == varying(best["config"])
        history = read_metrics(run)
        row = seeds[seeds["seed"] == seed].iloc[0]
        for key in METRIC_KEYS:  # the mean of the last 10 epochs (all 4 here)
            assert math.isclose(row[key], sum(r[key] for r in history) / len(history), rel_tol=1e-9)
    assert seeds["miou"].nunique() == 2  # different seeds, different runs

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    summary = summary.set_index("metric")
    for key in METRIC_KEYS:
        a, b = seeds[key]
        half = T_975_DF1 * abs(a - b) / math.sqrt(2) / math.sqrt(2)
        assert math.isclose(summary.loc[key, "mean"], (a + b) / 2)
        assert math.isclose(summary.loc[key, "std"], abs(a - b) / math.sqrt(2), abs_tol=1e-12)
        assert summary.loc[key, "ci_high"] == pytest.approx((a + b) / 2 + half, rel=1e-6)
    assert list(pd.read_csv(out / "comparisons.csv").columns) == COMPARISON_COLUMNS
    printed = capsys.readouterr().out
    metric = best["metric"]
    assert f"{summary.loc[metric, 'mean']:.4f} +/- {summary.loc[metric, 'std']:.4f}" in printed


def test_top_configs_and_the_published_ones_paired_on_the_same_seeds(finished_study, capsys):
    best = json.loads((finished_study / "best_config.json").read_text())
    trials = pd.read_csv(finished_study / "results.csv")
    assert main([str(finished_study), "--top", "2", "--seeds", "2"]) == 0
    out = finished_study / "reproduce"
    configs = pd.read_csv(out / "configs.csv")
    completed = trials[trials["state"] == "completed"]
    ascending = best["mode"] == "min"
    top = completed.sort_values(f"last_{best['metric']}", ascending=ascending)["trial"].head(2).tolist()
    assert configs["trial"].tolist()[: len(top)] == top
    assert {0, 1} <= set(configs["trial"])  # the published configurations
    assert {"paper", "seed_report"} <= set(configs["config"])
    fresh = best["config"]["seed"] - best["trial"] + len(trials)

    # the published configurations as the space defines them, at the study's budget of 4 epochs
    paper = json.loads((out / "paper" / f"seed_{fresh}" / "config.json").read_text())
    published = (paper["weighting"], paper["weight_decay"], paper["step_size"], paper["gamma"])
    assert published == ("equal", 0.0, 2, 0.5)
    seed_dir = out / "seed_report" / f"seed_{fresh}"
    report = json.loads((seed_dir / "config.json").read_text())
    assert (report["weighting"], report["temperature"], report["weight_decay"]) == ("dwa", 2.0, 1e-4)
    assert report["step_size"] == 1 and report["epochs"] == best["config"]["epochs"]

    seeds = pd.read_csv(out / "seeds.csv")
    by_config = seeds.groupby("config")["seed"].apply(sorted)
    assert all(s == by_config.iloc[0] for s in by_config)  # paired: every config on the same seeds
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["config"]) == set(configs["config"])

    comparisons = pd.read_csv(out / "comparisons.csv")
    names = comparisons["comparison"].unique().tolist()
    assert any("dwa" in n and "equal" in n for n in names)
    tops = [c for c, roles in zip(configs["config"], configs["roles"], strict=True) if "top" in roles]
    against_paper = [n.split(" vs ")[0].split("(")[-1].rstrip(")") for n in names if n.endswith("paper)")]
    against_paper += [n.removesuffix(" vs paper") for n in names if n.endswith(" vs paper")]
    assert all(c in against_paper for c in tops if c != "paper")  # each top trial against the paper's
    wide = seeds.pivot(index="seed", columns="config", values="score")
    for name in names:
        row = comparisons[(comparisons["comparison"] == name) & (comparisons["metric"] == "score")].iloc[0]
        a, b = name.split(" vs ")
        a, b = a.split("(")[-1].rstrip(")"), b.split("(")[-1].rstrip(")")
        differences = wide[a] - wide[b]
        assert row["mean_diff"] == pytest.approx(differences.mean())
        assert row["n"] == 2
    assert "paired over seeds" in capsys.readouterr().out

    # run again without --top: the best configuration's runs are there already and are kept
    checkpoint = next((out / configs["config"].iloc[0]).glob(f"seed_*/{CHECKPOINT_FILE}"))
    stamp = checkpoint.stat().st_mtime_ns
    assert main([str(finished_study), "--seeds", "2"]) == 0
    assert checkpoint.stat().st_mtime_ns == stamp


def test_a_folder_without_a_finished_study_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="best_config.json: not found"):
        main([str(tmp_path)])


def test_bad_counts_are_clear_errors(finished_study):
    with pytest.raises(UserError, match="--top must be at least 1, got 0"):
        main([str(finished_study), "--top", "0"])
    with pytest.raises(UserError, match="--seeds must be at least 1, got 0"):
        main([str(finished_study), "--seeds", "0"])
