"""`python -m study.reproduce`: the best config again on fresh seeds; with --top K the K best trials, with
--per-weighting-best K the K best of each weighting method, and both published configurations, paired on
the same seeds, with intervals and comparisons; the plan and progress it prints."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtan.data import load_data
from mtan.errors import UserError
from mtan.files import atomic_write_json
from mtan.metrics import DELTA_M_KEYS, METRIC_KEYS, metric
from mtan.run_folder import CHECKPOINT_FILE, read_metrics
from mtan.train import train
from study.record import StudyFolder, count_states
from study.reproduce.cli import main
from study.reproduce.plan import (
    confirmation_candidates,
    first_fresh_seed,
    plan_confirmation,
    read_trial_config,
    recorded_seed,
)
from study.reproduce.retrain import _train_seed
from tests.bad_input import refused, snapshot
from tests.fake_study import write_fake_study
from tests.tiny_data import tiny_config

SUMMARY_COLUMNS = ["config", "metric", "mean", "std", "ci_low", "ci_high", "n"]
COMPARISON_COLUMNS = ["comparison", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "n"]
T_975_DF1 = 12.706205  # Student t, 1 degree of freedom: tan(pi * 0.475)
STL = {"stl_segmentation": "segmentation", "stl_depth": "depth"}


def varying(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("seed", "device", "num_threads")}


def test_the_tabulated_quantile():
    assert math.tan(math.pi * 0.475) == pytest.approx(T_975_DF1, abs=1e-6)


def test_reproduce_writes_seed_runs_and_a_summary(finished_study, capsys):
    best = json.loads((finished_study / "best_config.json").read_text())
    trials = pd.read_csv(finished_study / "results.csv")
    assert main([str(finished_study), "--seeds", "2"]) == 0
    out = finished_study / "reproduce"
    all_seeds = pd.read_csv(out / "seeds.csv")
    first = best["config"]["seed"] - best["trial"] + len(trials)  # after every seed the study used
    assert list(all_seeds["seed"]) == [first, first + 1] * 3  # the best configuration, then the two STL
    assert (all_seeds["epochs"] == best["config"]["epochs"]).all()  # the full epoch budget
    name, *single_task = all_seeds["config"].unique()
    assert single_task == list(STL)
    configs = pd.read_csv(out / "configs.csv")
    assert configs["trial"].tolist()[0] == best["trial"] and configs["trial"][1:].isna().all()
    # the best trial is the first published configuration's, or the second's, when ASHA spared it
    published = {0: ["paper"], 1: ["seed_report"]}.get(best["trial"], [])
    assert configs["roles"].tolist() == ["; ".join(["top 1", *published]), "stl segmentation", "stl depth"]
    seeds = all_seeds[all_seeds["config"] == name]
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
    summary = summary[summary["config"] == name].set_index("metric")
    for key in (*METRIC_KEYS, "delta_m"):
        a, b = seeds[key]
        half = T_975_DF1 * abs(a - b) / math.sqrt(2) / math.sqrt(2)
        assert math.isclose(summary.loc[key, "mean"], (a + b) / 2)
        assert math.isclose(summary.loc[key, "std"], abs(a - b) / math.sqrt(2), abs_tol=1e-12)
        assert summary.loc[key, "ci_high"] == pytest.approx((a + b) / 2 + half, rel=1e-6)
    assert list(pd.read_csv(out / "comparisons.csv").columns) == COMPARISON_COLUMNS
    printed = capsys.readouterr().out
    metric = best["metric"]
    assert f"{summary.loc[metric, 'mean']:.4f} +/- {summary.loc[metric, 'std']:.4f}" in printed
    assert f"{summary.loc['delta_m', 'mean']:.4f} +/- {summary.loc['delta_m', 'std']:.4f}" in printed
    check_single_task_runs(out, all_seeds, finished_study)


def check_single_task_runs(out, seeds: pd.DataFrame, study) -> None:
    """The STL runs: the paper's configuration (trial 0's) on one task, on the configurations' seeds, with
    their task's metrics alone; each configuration's Delta_m against them, seed by seed, by hand."""
    paper = json.loads((study / "trials" / "trial_000" / "config.json").read_text())
    by_config = seeds.set_index(["config", "seed"])
    for name, task in STL.items():
        for seed in sorted(set(seeds["seed"])):
            run = out / name / f"seed_{seed}"
            config = json.loads((run / "config.json").read_text())
            assert varying(config) == varying({**paper, "single_task": task})
            assert config["seed"] == seed
            row = read_metrics(run)[-1]
            assert "score" not in row and all((metric(k).task == task) == (k in row) for k in DELTA_M_KEYS)
            assert math.isnan(by_config.loc[(name, seed), "delta_m"])
    for (name, seed), row in by_config.iterrows():
        if name in STL:
            continue
        terms = []
        for key in DELTA_M_KEYS:  # (M_m - M_b) / M_b, minus where higher is better
            baseline = by_config.loc[(f"stl_{metric(key).task}", seed), key]
            sign = -1 if metric(key).higher_is_better else 1
            terms.append(sign * (row[key] - baseline) / baseline)
        assert row["delta_m"] == pytest.approx(100 * sum(terms) / 4, rel=1e-9)


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
        delta = comparisons[(comparisons["comparison"] == name) & (comparisons["metric"] == "delta_m")]
        wide_delta = seeds.pivot(index="seed", columns="config", values="delta_m")
        assert delta.iloc[0]["mean_diff"] == pytest.approx((wide_delta[a] - wide_delta[b]).mean())
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


def test_the_best_of_each_weighting_method_against_tuned_equal(finished_study, tmp_path, capsys):
    # a copy without the other tests' reproduce/ folder
    study = shutil.copytree(finished_study, tmp_path / "study", ignore=shutil.ignore_patterns("reproduce"))
    best = json.loads((study / "best_config.json").read_text())
    trials = pd.read_csv(study / "results.csv")
    assert main([str(study), "--per-weighting-best", "1", "--seeds", "2"]) == 0
    out = study / "reproduce"
    configs = pd.read_csv(out / "configs.csv")
    assert configs["roles"].tolist()[-2:] == ["stl segmentation", "stl depth"]
    configs = configs[configs["trial"].notna()]  # the configurations of trials; then the STL runs
    roles = dict(zip(configs["trial"], configs["roles"].str.split("; "), strict=True))
    ascending = best["mode"] == "min"
    value = f"last_{best['metric']}"
    best_of = {}
    # by hand, for every method with a trial that trained: its best completed trial by the study's metric
    # (as --top ranks); where ASHA stopped all of them (which, in a study this small, depends on how the
    # trials' results interleaved), the one that trained longest, then the best value
    for weighting, group in trials[trials["state"] != "failed"].groupby("weighting"):
        completed = group[group["state"] == "completed"]
        if len(completed):
            ranked = completed.sort_values(value, ascending=ascending, kind="stable")
        else:
            ranked = group.sort_values(["epochs", value], ascending=[False, ascending], kind="stable")
        best_of[weighting] = int(ranked["trial"].iloc[0])
        assert f"best 1 of {weighting}" in roles[best_of[weighting]]
    assert {"equal", "dwa"} <= set(best_of)  # the published configurations are equal and DWA
    assert "paper" in roles[0] and "seed_report" in roles[1]
    assert len(configs) == len(set(best_of.values()) | {0, 1})
    seeds = pd.read_csv(out / "seeds.csv")
    assert (seeds.groupby("config")["seed"].apply(sorted).map(len) == 2).all()

    comparisons = pd.read_csv(out / "comparisons.csv")
    names = dict(zip(configs["trial"], configs["config"], strict=True))
    best_name = {weighting: names[trial] for weighting, trial in best_of.items()}
    expected = [  # every method's best against equal's, then against scalarization's (once against equal)
        f"best {w} ({best_name[w]}) vs best {reference} ({best_name[reference]})"
        for reference, before in (("equal", {"equal"}), ("scalarization", {"equal", "scalarization"}))
        if reference in best_name
        for w in best_name
        if w not in before
    ]
    assert sorted(comparisons["comparison"].unique()) == sorted(expected)
    # Holm within each metric's family, by hand: the i-th smallest of m p-values times m - i + 1, capped at
    # 1, kept non-decreasing
    for _, family in comparisons.dropna(subset=["p_value"]).groupby("metric"):
        ordered = family.sort_values("p_value")
        adjusted = np.maximum.accumulate(
            np.minimum(1.0, ordered["p_value"].to_numpy() * np.arange(len(ordered), 0, -1))
        )
        assert ordered["p_holm"].to_numpy() == pytest.approx(adjusted)
    assert comparisons["p_holm"].isna().equals(comparisons["p_value"].isna())

    printed = capsys.readouterr().out.splitlines()
    runs = (len(configs) + 2) * 2
    assert printed[0].startswith(
        f"confirmation: {len(configs)} configurations and 2 single-task baselines x 2"
    )
    assert f"runs: {runs} new, 0 already in the folder" in printed
    epochs = best["config"]["epochs"]
    per_epoch = [line for line in printed if "  epoch " in line and "ETA" in line]
    assert len(per_epoch) == runs * epochs  # a line per run and epoch, piped
    assert sum(f"done: {epochs}/{epochs} epochs" in line for line in printed) == runs
    assert any(line.endswith("ETA 0 s)") for line in per_epoch)
    assert any("Holm p = " in line and "significant" in line for line in printed)

    # again: every run is in the folder, the plan says so and keeps them
    assert main([str(study), "--per-weighting-best", "1", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"runs: 0 new, {runs} already in the folder" in printed
    assert sum("kept (trained before)" in line for line in printed) == runs


def _with_states(finished_study, tmp_path, states) -> Path:
    """A copy of the finished study whose trials of other methods than equal have `states` (one per
    trial, in order), study.json's counts kept consistent."""
    study = shutil.copytree(finished_study, tmp_path / "study")
    trials = pd.read_csv(study / "results.csv")
    others = trials["weighting"] != "equal"
    trials.loc[others, "state"] = states[: int(others.sum())]
    trials.to_csv(study / "results.csv", index=False)
    folder = StudyFolder(study)  # study.json's counts as the edited results.csv's, which are checked
    atomic_write_json(folder.study_json, {**folder.read_study(), "states": count_states(trials)})
    return study


def test_a_method_without_a_trained_trial_is_named_and_left_out(finished_study, tmp_path):
    study = _with_states(finished_study, tmp_path, ["failed"] * 100)
    plan = plan_confirmation(study, seeds=2, per_weighting_best=1)
    # equal's trials keep their states: a note on them too when ASHA stopped its one trial in the fixture
    assert [note for note in plan.notes if not note.startswith("equal: ")] == [
        f"{method}: no trial of the study trained, so none of its configurations is retrained"
        for method in ("dwa", "scalarization")  # the study's other methods, in the space's order
    ]
    assert [c.weighting for c in plan.candidates if any(r.startswith("best ") for r in c.roles)] == ["equal"]
    assert "seed_report" in {c.name for c in plan.candidates}  # the published DWA configuration still is
    assert plan.pairs == ()  # no method's best to compare with equal's


def test_a_method_whose_trials_asha_stopped_is_confirmed_by_its_longest_trained_best(
    finished_study, tmp_path
):
    study = _with_states(finished_study, tmp_path, ["stopped_early"] * 100)
    table = pd.read_csv(study / "results.csv")
    plan = plan_confirmation(study, seeds=2, per_weighting_best=1)
    chosen = {c.weighting: c for c in plan.candidates if any(r.startswith("best 1 of") for r in c.roles)}
    assert set(chosen) == {"equal", "dwa", "scalarization"}
    for method in ("dwa", "scalarization"):  # by hand: the most epochs, then the best last score
        rows = table[table["weighting"] == method]
        longest = rows[rows["epochs"] == rows["epochs"].max()]
        expected = int(longest.loc[longest["last_score"].idxmax(), "trial"])
        assert chosen[method].trial == expected
        assert any(note.startswith(f"{method}: fewer completed trials") and chosen[method].name in note
                   for note in plan.notes)  # fmt: skip
    assert (chosen["dwa"].name, chosen["equal"].name) in {pair[1:] for pair in plan.pairs}  # compared


def test_top_and_per_weighting_best_together_are_refused_in_one_line(finished_study, capsys):
    before = snapshot(finished_study)
    argv = [str(finished_study), "--top", "2", "--per-weighting-best", "1"]
    code, error = refused(main, argv, capsys)
    assert (code, error) == (
        2,
        "error: --top and --per-weighting-best: give one (the K best overall, or of each method)",
    )
    assert snapshot(finished_study) == before


def candidates_of(folder: StudyFolder, top: int | None) -> tuple[list, list[str]]:
    best, table = folder.read_best_config(), folder.read_results()
    return confirmation_candidates(best, table, lambda n: read_trial_config(folder, n), top)


def test_each_configuration_is_the_one_its_trial_trained_with(tmp_path):
    folder = StudyFolder(write_fake_study(tmp_path, reproduce=False, journal=False))
    configs = {c.trial: c for c in candidates_of(folder, top=2)[0]}
    assert set(configs) == {3, 0, 1}  # the two completed trials (3 the best), then the seed report's
    for number, candidate in configs.items():
        assert candidate.config == json.loads(folder.trial_config_json(number).read_text())
    edited = {**configs[0].config, "batch_size": 3}  # a field no results.csv column holds
    atomic_write_json(folder.trial_config_json(0), edited)
    assert {c.trial: c.config for c in candidates_of(folder, top=2)[0]}[0] == edited


def test_a_published_trial_without_its_config_is_left_out_and_a_top_one_refused(tmp_path):
    folder = StudyFolder(write_fake_study(tmp_path, reproduce=False, journal=False))
    folder.trial_config_json(1).unlink()  # the seed report's trial failed before it began training
    kept, notes = candidates_of(folder, top=2)
    assert [c.name for c in kept] == ["trial_003", "paper"]
    assert notes == ["seed_report: not retrained, trial 1 has no config.json (it failed)"]
    folder.trial_config_json(3).unlink()
    with pytest.raises(UserError, match=r"^trial 3: no config.json in its folder, though it trained"):
        candidates_of(folder, top=None)


def test_the_fresh_seeds_start_above_the_recorded_seed_of_every_trial(tmp_path):
    folder = StudyFolder(write_fake_study(tmp_path, reproduce=False, journal=False))
    atomic_write_json(folder.study_json, {**folder.read_study(), "settings": {"seed": 100}})
    assert recorded_seed(folder) == 100
    assert first_fresh_seed(100, folder.read_results()) == 108  # 8 trials: seeds 100 to 107
    atomic_write_json(folder.study_json, {"status": "finished"})
    with pytest.raises(UserError, match=r"study.json: no study seed recorded"):
        recorded_seed(folder)


def test_without_the_papers_config_the_single_task_runs_are_left_out_with_a_note(tmp_path):
    folder = StudyFolder(write_fake_study(tmp_path, reproduce=False, journal=False))
    plan = plan_confirmation(folder.path, seeds=2, top=2)
    assert [(c.name, c.trial, c.config["single_task"]) for c in plan.single_task] == [
        ("stl_segmentation", None, "segmentation"),
        ("stl_depth", None, "depth"),
    ]
    paper = json.loads(folder.trial_config_json(0).read_text())
    assert plan.single_task[1].config == {**paper, "single_task": "depth"}  # the paper's is equal weighting
    folder.trial_config_json(0).unlink()  # the paper's trial failed before it began training
    plan = plan_confirmation(folder.path, seeds=2)  # the best alone: with --top 2 trial 0 is a top one
    assert plan.single_task == ()
    assert plan.notes[-1] == (
        "single-task runs: not trained, trial 0 (paper) has no config.json (it failed), so there is no "
        "Delta_m"
    )


def without_seconds(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "seconds"}


def test_a_seed_run_stopped_before_its_first_checkpoint_is_trained_again(tiny_root, tmp_path):
    # the bug this guards against: the confirmation called train(resume=False) without a checkpoint, and
    # mtan.train refuses a folder that already holds metrics rows
    config = tiny_config(tiny_root, single_task="segmentation", epochs=2)
    data = load_data(config)
    straight = _train_seed(config, tmp_path / "straight", data)
    stopped = tmp_path / "stopped"
    first_epoch = dataclasses.replace(config, epochs=1)
    train(first_epoch, stopped, checkpoint_every=2, final_checkpoint=False, progress=False)
    assert read_metrics(stopped) and not (stopped / CHECKPOINT_FILE).exists()
    resumed = _train_seed(config, stopped, data)
    assert [without_seconds(row) for row in resumed] == [without_seconds(row) for row in straight]
    assert [row["epoch"] for row in read_metrics(stopped)] == [1, 2]


def test_an_interrupted_confirmation_says_how_to_continue_in_one_line(finished_study, monkeypatch, capsys):
    def interrupted(settings, plan, data):
        raise KeyboardInterrupt  # what Ctrl-C, or SIGTERM (`study.cluster.interrupt_on_sigterm`), raises

    monkeypatch.setattr("study.reproduce.cli.reproduce", interrupted)
    assert main([str(finished_study), "--seeds", "1"]) == 130
    assert capsys.readouterr().err.splitlines() == [
        f"interrupted: the runs so far are in {finished_study / 'reproduce'}; the same command continues "
        "them (each from its last checkpoint)"
    ]


def test_a_study_with_nothing_to_retrain_is_one_line(tmp_path):
    # no trial completed, and the published ones failed before training: --top 2 has nothing to retrain
    folder = StudyFolder(write_fake_study(tmp_path, reproduce=False, journal=False))
    trials = pd.read_csv(folder.results_csv).assign(state="stopped_early")
    trials.to_csv(folder.results_csv, index=False)
    atomic_write_json(folder.study_json, {**folder.read_study(), "states": count_states(trials)})
    for trial in (0, 1):
        folder.trial_config_json(trial).unlink()
    with pytest.raises(UserError, match=r"nothing to retrain \(paper: not retrained, trial 0 has no config"):
        plan_confirmation(folder.path, seeds=2, top=2)
