"""The report end to end: on a small study the real code ran, on fake studies written by the study's
own writers, its edge cases, and the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.answer import DELTA_M
from analysis.render import Banner, Figure, Heading, Paragraph, Table, to_html, to_markdown
from analysis.report import FIGURE_FILES, FRONT_FIGURE_FILES, main, write_report
from mtan.errors import UserError
from mtan.metrics import METRIC_KEYS
from study.reproduce.stats import summary_table
from tests.fake_study import FakeTrial, default_trials, scalarization_trials, write_fake_study

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _report(tmp_path: Path, **kwargs) -> tuple[Path, str, str]:
    study = write_fake_study(tmp_path, **kwargs)
    files = write_report(study)
    return study / "report", files.markdown.read_text(), files.html.read_text()


def test_the_report_of_a_study_the_real_code_ran(finished_study: Path, tmp_path: Path) -> None:
    files = write_report(finished_study, tmp_path / "report")
    md = files.markdown.read_text()
    table = pd.read_csv(finished_study / "results.csv")
    best = json.loads((finished_study / "best_config.json").read_text())
    assert f"| trials | {len(table)} (" in md
    name = {0: "0 (paper)", 1: "1 (seed report)"}.get(best["trial"], str(best["trial"]))  # its number
    assert f"Best trial {name}: weighting {best['config']['weighting']}" in md
    assert "StepLR step (fraction of the epochs)" in md and "StepLR step (epochs)" in md  # the recorded space
    written = {path.name for path in files.figures}
    assert {FIGURE_FILES[k] for k in ("weighting", "hyperparameters", "curves", "tradeoff")} <= written
    for path in files.figures:
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 0
    importance = md.split("## Hyperparameter importance")[1].split("\n## ")[0]
    assert "Optuna journal" not in importance or "completed trial" in importance  # the real journal was read


def test_full_report(tmp_path: Path) -> None:
    # 6 completed trials, each value of each categorical parameter twice: importance
    out, md, html = _report(tmp_path, trials=[*default_trials(16, failed=1), *scalarization_trials()])
    for name in FIGURE_FILES.values():
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
        assert f"]({name})" in md
    # the HTML stands alone: every figure embedded, nothing loaded from beside it
    assert html.count('src="data:image/png;base64,') == len(FIGURE_FILES)
    assert not re.search(r'src="(?!data:)', html)
    # the comparison table holds the best trial's final mIoU in percent and the published rows
    best = json.loads((out.parent / "best_config.json").read_text())
    row = next(line for line in md.splitlines() if line.startswith("| this study: best trial"))
    assert f"| {100 * best['metrics']['miou']:.2f} |" in row
    assert f"| {best['metrics']['score']:.3f} |" in row
    for published in ("| 53.04 |", "| 33.63 |", "| 68.09 ? |", "| 74.01 |", "| +19.30 |"):
        assert published in md
    assert "mean ± std of 3 seeds" in md
    # --top 1: the completed scalarization trials were not among those retrained, and the answer says so
    assert "No configuration of scalarization was retrained: it is not among the configurations" in md
    assert "synthetic data set (generated, not CityScapes)" in md
    assert "### Protocol differences" in md
    assert "PedAnovaImportanceEvaluator" in md and "pruned" in md
    # the failed trial: a banner and its reason
    assert "1 of 18 trials failed" in md
    assert "| 15 | RuntimeError: CUDA out of memory |" in md  # trial 15, by its number


def test_no_dwa_trial_says_so(tmp_path: Path) -> None:
    out, md, _ = _report(tmp_path, trials=default_trials(5, failed=0, dwa=False))
    assert "No dwa or scalarization trial ran in this study: not shown." in md
    assert "Not shown: no finished trial changed its task weights" in md
    assert not (out / FIGURE_FILES["weights"]).exists()  # every weight stayed 1
    assert "only one weighting ran, so there is nothing to compare it with" in md


def test_all_trials_failed(tmp_path: Path, capsys) -> None:
    diverged = "TrainingDiverged: depth loss became nan in epoch 2"
    trials = [
        FakeTrial("equal", 1e-4, 0.0, 0.5, 0.5, epochs=0, state="failed", error="ValueError: bad config"),
        *[FakeTrial("dwa", 1e-4, 0.0, 0.5, 0.5, 2.0, epochs=0, state="failed", error=diverged)] * 2,
    ]
    study = write_fake_study(tmp_path, trials=trials)
    out = tmp_path / "r"
    assert main([str(study), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    note = f"every one of the 3 trials failed: there is no result to compare, and no figure. The most common reason (2 of 3): {diverged}"  # noqa: E501
    assert capsys.readouterr().out.splitlines()[-1] == note  # the command's last line
    banners = [line for line in md.splitlines() if line.startswith("> **Warning:**")]
    assert banners[0] == f"> **Warning:** {note}"  # the report's first words after its title
    assert "ValueError: bad config" in md  # each reason listed
    assert "| paper, MTAN equal |" in md
    assert not list(out.glob("*.png"))


def test_no_trial_at_all(tmp_path: Path) -> None:
    trials = [FakeTrial("equal", 1e-4, 0.0, 0.5, 0.5, epochs=0, state="failed")]
    study = write_fake_study(tmp_path, trials=trials, journal=False)
    header = (study / "results.csv").read_text().splitlines()[0]
    (study / "results.csv").write_text(header + "\n")
    with pytest.raises(UserError, match="holds 0 trial row.*but study.json records 1 trials"):
        write_report(study)  # a results.csv emptied after the study wrote it
    recorded = json.loads((study / "study.json").read_text())
    del recorded["num_samples"], recorded["states"]  # a study.json that says nothing of its trials
    (study / "study.json").write_text(json.dumps(recorded))
    md = write_report(study).markdown.read_text()
    assert "results.csv lists no trial" in md
    assert "No trial ran: nothing to compare." in md


def test_one_trial_of_one_epoch(tmp_path: Path) -> None:
    trials = [FakeTrial("dwa", 1e-4, 0.0, 0.5, 0.5, temperature=2.0, epochs=1, state="stopped_early")]
    out, md, _ = _report(tmp_path, trials=trials)
    assert "after 1 epoch (stopped early; one run, one seed)" in md
    assert "only one weighting ran, so there is nothing to compare it with" in md
    assert (out / FIGURE_FILES["curves"]).read_bytes().startswith(PNG)
    assert "Not computed: 0 completed trial(s)" in md


def test_cityscapes_study_without_reproduce_or_journal(tmp_path: Path) -> None:
    _, md, _ = _report(tmp_path, data="/data/cityscapes", reproduce=False, journal=False)
    assert "synthetic" not in md
    row = next(line for line in md.splitlines() if line.startswith("| this study: best trial"))
    assert re.search(r"\| [+-]\d+\.\d\d \|$", row)  # Delta_m against the single-task row
    assert "Not reproduced yet" in md
    assert "best config reproduced" not in md
    assert "Not computed: no optuna.journal in the results directory." in md


def test_confirmed_ranking_winners_curse_and_weightings_at_a_common_epoch(tmp_path: Path) -> None:
    trials = default_trials(16, failed=1)
    _, md, _ = _report(tmp_path, trials=trials)
    assert "## Confirmed ranking on fresh seeds" in md
    assert "| 1 | trial_003 | 3 | top 1 | dwa |" in md  # the best trial, confirmed first here
    # the seed report's configuration: stopped by ASHA at epoch 3 of 9 in the study, retrained for all 9
    assert "| seed_report | 1 | seed report | dwa | 0.505 after 3 of 9 epochs |" in md
    assert "Winner's curse: the study's best trial trial_003 reached score" in md
    assert "- best dwa (trial_003) vs best equal (paper): +" in md and "95 % CI" in md
    # the weightings at the epoch all 15 trials that did not fail reached, n per weighting
    equal = sum(t.weighting == "equal" and t.state != "failed" for t in trials)
    dwa = sum(t.weighting == "dwa" and t.state != "failed" for t in trials)
    assert "At epoch 1, which all 15 trials that did not fail reached (score): equal best" in md
    assert f"n = {equal}; dwa best" in md and f"n = {dwa}." in md
    _, unconfirmed, _ = _report(tmp_path / "none", trials=trials, reproduce=False)
    assert "Not confirmed yet: `python -m study.reproduce RESULTS_DIR --per-weighting-best 1`" in unconfirmed
    assert "Not answered yet: `python -m study.reproduce RESULTS_DIR --per-weighting-best 1" in unconfirmed


def _section(md: str, heading: str) -> str:
    return md.split(f"\n## {heading}")[1].split("\n## ")[0]


def test_the_answer_leads_on_a_study_with_single_task_runs(tmp_path: Path) -> None:
    trials = [*default_trials(4, failed=0), *scalarization_trials()]  # 2 equal, 2 dwa, 2 scalarization
    study = write_fake_study(tmp_path, trials=trials, per_weighting=2, per_weighting_best=1, single_task=True)
    md = write_report(study).markdown.read_text()
    summary = pd.read_csv(study / "reproduce" / "summary.csv").set_index(["config", "metric"])
    comparisons = pd.read_csv(study / "reproduce" / "comparisons.csv").set_index(["comparison", "metric"])
    dwa = comparisons.loc[("best dwa (trial_003) vs best equal (paper)", DELTA_M)]
    first = _section(md, "Key findings").strip().splitlines()[0]
    assert first.startswith(
        "- On this data (synthetic, not CityScapes), with 2 trials per method (`--per-weighting 2`) and 3 "
        "fresh seeds, Delta_m against the study's own single-task networks (%, lower is better): dwa vs "
        f"tuned equal {dwa['mean_diff']:+.2f} [95 % CI {dwa['ci_low']:+.2f}, {dwa['ci_high']:+.2f}], "
        "significant"
    )
    answer = _section(md, "The answer: a weighting method against tuned equal weighting")
    assert first.removeprefix("- ") in answer  # the same sentence opens the section
    assert "> **Warning:** Synthetic data (generated, not CityScapes)" in answer
    rows = [line for line in answer.splitlines() if line.startswith("| this study |")]
    assert [row.split(" | ")[1] for row in rows] == [
        "STL segmentation",
        "STL depth",
        "equal",
        "dwa",
        "scalarization",
    ]
    stl = summary.loc[("stl_segmentation", "miou")]
    assert rows[0].startswith(
        f"| this study | STL segmentation | stl_segmentation | {100 * stl['mean']:.2f} "
        f"[{100 * stl['ci_low']:.2f}, {100 * stl['ci_high']:.2f}] |"
    )
    delta = summary.loc[("trial_003", DELTA_M)]
    assert rows[3].startswith("| this study | dwa | trial_003 (best 1 of dwa) |")
    assert rows[3].endswith(f"| {delta['mean']:+.2f} [{delta['ci_low']:+.2f}, {delta['ci_high']:+.2f}] | 3 |")
    assert (
        "| Nash-MTL table, MTAN LS (equal) | - | 75.18 | 93.49 | 0.0155 | 46.77 | per-batch mean |" in answer
    )
    # the study's sections: every method at one epoch, as many trials each, deferring to the confirmation
    weighting = _section(md, "Weighting methods compared in the study")
    assert "Trials per method: equal 2, dwa 2, scalarization 2." in weighting
    assert "The confirmation on fresh seeds (above) is what says which method is better" in weighting
    assert "> **Warning:** Synthetic data" in weighting


def test_unequal_budgets_compare_no_bests_and_say_the_answer_is_not_the_fields(tmp_path: Path) -> None:
    _, md, _ = _report(tmp_path, trials=default_trials(5, failed=0))  # equal 3, dwa 2; --num-samples
    first = _section(md, "Key findings").strip().splitlines()[0]
    assert first.startswith(
        "- On this data (synthetic, not CityScapes), with unequal trials per method, chosen by the sampler "
        "(equal 3, dwa 2)"
    )
    assert "Delta_m needs the study's own single-task networks" in first  # a --top confirmation, no STL
    assert "so this does not answer the field's question" in first
    assert "No configuration of scalarization was retrained: it has no completed trial." in md
    weighting = _section(md, "Weighting methods compared in the study")
    assert "Trials per method: equal 3, dwa 2." in weighting
    assert "only medians are shown, not bests" in weighting
    header = next(line for line in weighting.splitlines() if line.startswith("| weighting |"))
    assert ", median |" in header and ", best" not in header
    at_epoch = next(line for line in _section(md, "Key findings").splitlines() if "At epoch" in line)
    assert "equal median" in at_epoch and "equal best" not in at_epoch and "dwa best" not in at_epoch
    assert "their bests are not compared" in at_epoch


def test_the_synthetic_warning_is_drawn_inside_every_figure(tmp_path: Path, monkeypatch) -> None:
    from analysis import plots

    drawn: dict[str, list[str]] = {}
    save = plots.save_figure

    def recording_save(fig, path, *args, **kwargs):
        drawn[Path(path).name] = [text.get_text() for text in fig.texts]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", recording_save)
    trials = [*default_trials(16, failed=1), *scalarization_trials()]
    write_report(write_fake_study(tmp_path / "synthetic", trials=trials))
    assert set(drawn) == set(FIGURE_FILES.values())
    assert all(plots.SYNTHETIC_MARK in texts for texts in drawn.values())
    drawn.clear()
    write_report(write_fake_study(tmp_path / "real", data="/data/cityscapes", trials=trials))
    assert drawn and not any(plots.SYNTHETIC_MARK in texts for texts in drawn.values())


def test_main_writes_into_out_and_removes_stale_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = [FakeTrial("equal", 1e-4, 0.0, 0.5, 0.5, epochs=0, state="failed")]
    study = write_fake_study(tmp_path, trials=trials)
    out = tmp_path / "r"
    out.mkdir()
    stale = out / FIGURE_FILES["weights"]
    stale.write_bytes(PNG)  # from an earlier report of another study
    assert main([str(study), "--out", str(out), "--delta-m-row", "seed_equal"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert "Delta_m % vs seed report, equal" in (out / "report.md").read_text()
    assert not stale.exists()


@pytest.mark.parametrize("kind", ["missing", "not_a_study"])
def test_bad_results_dir_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "results"
    if kind == "not_a_study":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    done = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0]
    assert "Traceback" not in done.stderr


def test_render_escapes_and_embeds(tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    png.write_bytes(PNG + b"0" * 10)
    blocks = [
        Heading(1, "T <1>"),
        Banner("careful"),
        Paragraph("a < b, then `python -m x --flag <N>`"),
        Table(pd.DataFrame({"a|b": ["x|y"], "c": ["<z>"]}), "cap"),
        Figure(png, "caption", "alt"),
    ]
    md = to_markdown(blocks)
    assert "| a\\|b | c |" in md and "| x\\|y | <z> |" in md and "![alt](f.png)" in md
    html = to_html(blocks, "title")
    assert "<h1>T &lt;1&gt;</h1>" in html and "<td>&lt;z&gt;</td>" in html and "a &lt; b" in html
    assert "then <code>python -m x --flag &lt;N&gt;</code></p>" in html  # a command as markdown shows it
    assert 'src="data:image/png;base64,iVBORw0KGgo' in html


def test_a_single_task_network_never_dominates_a_front_point(tmp_path: Path) -> None:
    # objectives of one task: the segmentation STL has values in both, and better ones, but it is a
    # reference line, not a rival, as study.reproduce --pareto prints it
    trials = [*default_trials(16, failed=1), *scalarization_trials()]
    study = write_fake_study(tmp_path, trials=trials, objectives=("miou", "pixel_acc"))
    summary_csv = study / "reproduce" / "summary.csv"
    seeds = pd.DataFrame(
        [{"config": "stl_segmentation", "seed": seed, **{m: math.nan for m in METRIC_KEYS},
          "miou": 0.95 + seed / 1000, "pixel_acc": 0.98 + seed / 1000}
         for seed in (100, 101, 102)]
    )  # fmt: skip
    pd.concat([pd.read_csv(summary_csv), summary_table(seeds, METRIC_KEYS)]).to_csv(summary_csv, index=False)
    configs_csv = study / "reproduce" / "configs.csv"
    configs = pd.read_csv(configs_csv)
    stl = {"config": "stl_segmentation", "roles": "stl segmentation", "weighting": "equal"}
    stl["state"] = "completed"
    pd.concat([configs, pd.DataFrame([stl])]).to_csv(configs_csv, index=False)
    md = write_report(study).markdown.read_text()
    assert "1 of the 1 front configurations stay non-dominated" in md
    assert "(by stl_segmentation)" not in md


def test_the_report_of_a_study_of_two_objectives(tmp_path: Path) -> None:
    trials = [*default_trials(16, failed=1), *scalarization_trials()]
    study = write_fake_study(tmp_path, trials=trials, objectives=("miou", "abs_err"))
    summary_csv = study / "reproduce" / "summary.csv"
    summary = pd.read_csv(summary_csv)
    # the confirmation's single-task networks, as study.reproduce names them: each scores its own task
    seeds = pd.DataFrame(
        [{"config": f"stl_{task}", "seed": seed, **{m: math.nan for m in METRIC_KEYS}, **own}
         for task, own in (("segmentation", {"miou": 0.9}), ("depth", {"abs_err": 0.01}))
         for seed in (100, 101, 102)]
    )  # fmt: skip
    single = summary_table(seeds, METRIC_KEYS)
    pd.concat([summary, single]).to_csv(summary_csv, index=False)
    files = write_report(study)
    md = files.markdown.read_text()
    assert {FIGURE_FILES["tradeoff"], FRONT_FIGURE_FILES["hypervolume"]} <= {p.name for p in files.figures}
    table = pd.read_csv(study / "results.csv")
    front = table.loc[table["pareto"]]
    assert f"The {len(front)} trial(s) on the front (means of the last 10 epochs)." in md
    # the methods on the front, counted from results.csv
    counts = front["weighting"].value_counts()
    for weighting, count in counts.items():
        assert (
            f"{weighting} ({count} of {len(front)})" in md.split("Weighting methods on the Pareto front")[1]
        )
    history = pd.read_csv(study / "hypervolume.csv")
    assert (
        f"Hypervolume after all {len(history)} completed trials: {history['hypervolume'].iloc[-1]:.4g}" in md
    )
    assert "front configurations stay non-dominated once their 95 % intervals count" in md
    # the key findings lead with the front and its confirmation, not with the comparison of methods
    findings = md.split("## Key findings")[1].split("\n## ")[0]
    bullets = [line for line in findings.splitlines() if line.startswith("- ")]
    assert bullets[0].startswith("- Weighting methods on the Pareto front of miou, abs_err: ")
    assert "front configurations stay non-dominated once their 95 % intervals count" in bullets[1]
    assert "Not answered yet" not in findings and sum("Pareto front of" in b for b in bullets) == 1
    assert "single-task networks on fresh seeds" in md
    assert "| objectives | miou (max), abs_err (min) |" in md and "| ASHA's metric | score (max) |" in md
    # a study of one objective writes no hypervolume figure; a stale one goes
    scalar = write_fake_study(tmp_path / "scalar")
    (scalar / "report").mkdir()
    (scalar / "report" / FRONT_FIGURE_FILES["hypervolume"]).write_bytes(PNG)
    write_report(scalar)
    assert not (scalar / "report" / FRONT_FIGURE_FILES["hypervolume"]).exists()
