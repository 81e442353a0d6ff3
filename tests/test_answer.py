"""The answer to the field's question from hand-built confirmation tables: the exact sentence (Delta_m
against the study's own single-task networks, Holm's p, the design), the table laid out like Nash-MTL's
Table 3, and what each says when the single-task runs or an equal budget are missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.answer import (
    NOT_ANSWERED,
    Budget,
    answer_sentence,
    answer_table,
    study_budget,
    study_weightings,
)
from analysis.confirmation import Confirmation, read_confirmation
from analysis.published import table_rows
from analysis.space import RecordedSpace
from study.record import StudyFolder
from study.space import SearchSpace

CONFIGS = (
    "config,trial,trial_id,roles,weighting,study_last,study_tail,state\n"
    "paper,0,id0,best 1 of equal; paper,equal,0.50,0.49,completed\n"
    "trial_004,4,id4,best 1 of dwa,dwa,0.55,0.53,completed\n"
    "trial_005,5,id5,best 1 of scalarization,scalarization,0.52,0.51,completed\n"
    "seed_report,1,id1,seed_report,dwa,0.31,0.30,stopped_early\n"
    "stl_segmentation,,,stl segmentation,equal,,,completed\n"
    "stl_depth,,,stl depth,equal,,,completed\n"
)
SUMMARY = (
    "config,metric,mean,std,ci_low,ci_high,n\n"
    "stl_segmentation,miou,0.60,0.01,0.575,0.625,3\n"
    "stl_segmentation,pixel_acc,0.90,0.01,0.875,0.925,3\n"
    "stl_depth,abs_err,0.0200,0.001,0.0175,0.0225,3\n"
    "stl_depth,rel_err,0.40,0.01,0.375,0.425,3\n"
    "paper,miou,0.55,0.01,0.525,0.575,3\n"
    "paper,pixel_acc,0.88,0.01,0.855,0.905,3\n"
    "paper,abs_err,0.0210,0.001,0.0185,0.0235,3\n"
    "paper,rel_err,0.42,0.01,0.395,0.445,3\n"
    "paper,score,0.50,0.02,0.45,0.55,3\n"
    "paper,delta_m,4.1,0.5,2.9,5.3,3\n"
    "trial_004,miou,0.56,0.01,0.535,0.585,3\n"
    "trial_004,pixel_acc,0.89,0.01,0.865,0.915,3\n"
    "trial_004,abs_err,0.0205,0.001,0.018,0.023,3\n"
    "trial_004,rel_err,0.41,0.01,0.385,0.435,3\n"
    "trial_004,score,0.52,0.02,0.47,0.57,3\n"
    "trial_004,delta_m,3.3,0.5,2.1,4.5,3\n"
    "trial_005,delta_m,3.9,0.5,2.7,5.1,3\n"
)
COMPARISONS = (
    "comparison,metric,mean_diff,ci_low,ci_high,p_value,p_holm,n\n"
    "best dwa (trial_004) vs best equal (paper),delta_m,-0.8,-2.1,0.5,0.21,0.41,3\n"
    "best dwa (trial_004) vs best equal (paper),score,0.02,-0.03,0.07,0.2,0.4,3\n"
    "best scalarization (trial_005) vs best equal (paper),delta_m,-0.2,-0.6,0.2,0.3,0.41,3\n"
    "best scalarization (trial_005) vs best equal (paper),score,0.01,-0.01,0.03,0.3,0.4,3\n"
    "best dwa (trial_004) vs best scalarization (trial_005),delta_m,-0.6,-0.9,-0.3,0.004,0.012,3\n"
    "best dwa (trial_004) vs best scalarization (trial_005),score,0.01,0.0,0.02,0.04,0.12,3\n"
)


def confirmation(root: Path, *, single_task: bool = True) -> Confirmation:
    folder = root / "reproduce"
    folder.mkdir(parents=True)
    configs, summary, comparisons = CONFIGS, SUMMARY, COMPARISONS
    if not single_task:  # a confirmation from before the single-task runs: no STL, no Delta_m
        configs = "".join(line for line in CONFIGS.splitlines(True) if not line.startswith("stl_"))
        summary = "".join(
            line for line in SUMMARY.splitlines(True) if "stl_" not in line and "delta_m" not in line
        )
        comparisons = "".join(line for line in COMPARISONS.splitlines(True) if "delta_m" not in line)
    (folder / "configs.csv").write_text(configs)
    (folder / "summary.csv").write_text(summary)
    (folder / "comparisons.csv").write_text(comparisons)
    found = read_confirmation(StudyFolder(root))
    assert found is not None
    return found


EQUAL_BUDGET = Budget(6, {"equal": 6, "dwa": 6, "scalarization": 6})


def test_the_answer_in_words(tmp_path: Path) -> None:
    sentence = answer_sentence(confirmation(tmp_path), EQUAL_BUDGET, "score", synthetic=True)
    assert sentence == (
        "On this data (synthetic, not CityScapes), with 6 trials per method (`--per-weighting 6`) and 3 "
        "fresh seeds, Delta_m against the study's own single-task networks (%, lower is better): dwa vs "
        "tuned equal -0.80 [95 % CI -2.10, +0.50], not significant (Holm p = 0.41); scalarization vs tuned "
        "equal -0.20 [95 % CI -0.60, +0.20], not significant (Holm p = 0.41); dwa vs tuned scalarization "
        "-0.60 [95 % CI -0.90, -0.30], significant (Holm p = 0.012; better)."
    )


def test_without_the_single_task_runs_the_answer_is_on_the_objective_and_says_why(tmp_path: Path) -> None:
    sentence = answer_sentence(
        confirmation(tmp_path, single_task=False), EQUAL_BUDGET, "score", synthetic=False
    )
    assert sentence == (
        "On this data, with 6 trials per method (`--per-weighting 6`) and 3 fresh seeds, Delta_m needs the "
        "study's own single-task networks (configurations stl_segmentation and stl_depth in the "
        "confirmation), which this confirmation lacks; on the study's objective instead (score, higher is "
        "better): dwa vs tuned equal +0.020 [95 % CI -0.030, +0.070], not significant (Holm p = 0.40); "
        "scalarization vs tuned equal +0.010 [95 % CI -0.010, +0.030], not significant (Holm p = 0.40); dwa "
        "vs tuned scalarization +0.010 [95 % CI +0.000, +0.020], not significant (Holm p = 0.12)."
    )


def test_unequal_budgets_say_this_is_not_the_fields_question(tmp_path: Path) -> None:
    budget = Budget(None, {"equal": 1, "dwa": 14, "scalarization": 5})
    sentence = answer_sentence(confirmation(tmp_path), budget, "score", synthetic=True)
    assert sentence.startswith(
        "On this data (synthetic, not CityScapes), with unequal trials per method, chosen by the sampler "
        "(equal 1, dwa 14, scalarization 5) and 3 fresh seeds, Delta_m"
    )
    not_the_fields_question = (
        " The methods did not get the same budget (the sampler chose each trial's method, `--num-samples`), "
        "so this does not answer the field's question, which tunes every method with the same budget "
        "(`python -m study.run --per-weighting N`)."
    )
    assert sentence.endswith(not_the_fields_question)
    # the sampler may give each method as many trials by chance: still not the same budget by design
    by_chance = Budget(None, {"equal": 10, "dwa": 10})
    sentence = answer_sentence(confirmation(tmp_path / "chance"), by_chance, "score", synthetic=True)
    assert "with equal trials per method, chosen by the sampler (equal 10, dwa 10) and 3 fresh seeds" in (
        sentence
    )
    assert sentence.endswith(not_the_fields_question)


def test_nothing_to_answer_without_two_methods_compared(tmp_path: Path) -> None:
    assert answer_sentence(None, EQUAL_BUDGET, "score", synthetic=True) == NOT_ANSWERED
    folder = tmp_path / "reproduce"
    folder.mkdir()
    (folder / "configs.csv").write_text(
        CONFIGS.splitlines(True)[0] + "trial_004,4,id4,top 1,dwa,0.55,0.53,c\n"
    )
    (folder / "summary.csv").write_text(
        "config,metric,mean,std,ci_low,ci_high,n\ntrial_004,score,0.5,0,0.5,0.5,3\n"
    )
    (folder / "comparisons.csv").write_text(COMPARISONS.splitlines(True)[0])
    only_best = read_confirmation(StudyFolder(tmp_path))
    assert answer_sentence(only_best, EQUAL_BUDGET, "score", synthetic=True) == NOT_ANSWERED
    # a --pareto confirmation retrains front points of two methods and compares none of them
    (folder / "configs.csv").write_text(
        CONFIGS.splitlines(True)[0]
        + "trial_003,3,id3,pareto front,equal,0.50,0.49,completed\n"
        + "trial_005,5,id5,pareto front,dwa,0.55,0.53,completed\n"
    )
    front = read_confirmation(StudyFolder(tmp_path))
    assert answer_sentence(front, EQUAL_BUDGET, "score", synthetic=True) == NOT_ANSWERED


def test_the_table_stl_first_then_each_methods_best_then_the_published_rows(tmp_path: Path) -> None:
    weightings = ("equal", "dwa", "uncertainty", "scalarization")
    table = answer_table(confirmation(tmp_path), weightings).set_index("method")
    expected_methods = ["STL segmentation", "STL depth", *weightings, *(r.label for r in table_rows())]
    assert table.index.tolist() == expected_methods
    assert table.loc["STL segmentation", "mIoU %"] == "60.00 [57.50, 62.50]"
    assert table.loc["STL segmentation", "abs err"] == "-"  # the other task's
    assert table.loc["STL depth", "rel err"] == "0.400 [0.375, 0.425]"
    assert table.loc["STL depth", "Delta_m %"] == "reference"
    dwa = table.loc["dwa"]
    assert dwa["configuration"] == "trial_004 (best 1 of dwa)"
    assert (dwa["mIoU %"], dwa["pix acc %"], dwa["abs err"], dwa["rel err"]) == (
        "56.00 [53.50, 58.50]", "89.00 [86.50, 91.50]", "0.0205 [0.0180, 0.0230]", "0.410 [0.385, 0.435]"
    )  # fmt: skip
    assert dwa["depth errors"] == "per-pixel mean" and dwa["seeds"] == "3"
    assert dwa["Delta_m %"] == "+3.30 [+2.10, +4.50]"
    assert table.loc["equal", "configuration"] == "paper (best 1 of equal, paper)"  # not an STL network
    assert table.loc["uncertainty", "configuration"] == "none retrained"
    nash_ls = table.loc["Nash-MTL table, MTAN LS (equal)"]
    assert (nash_ls["mIoU %"], nash_ls["abs err"], nash_ls["rel err"]) == ("75.18", "0.0155", "46.77")
    assert nash_ls["depth errors"] == "per-batch mean"
    assert nash_ls["Delta_m %"] == "+22.62"  # from the rounded values; the table's own is 22.60
    assert table.loc["single-task baseline (STL, Nash-MTL table)", "Delta_m %"] == "reference"
    without = answer_table(confirmation(tmp_path / "old", single_task=False), weightings).set_index("method")
    assert "STL segmentation" not in without.index and without.loc["dwa", "Delta_m %"] == "-"


def test_the_budget_and_the_methods_from_study_json() -> None:
    trials = pd.DataFrame({"weighting": ["equal", "dwa", "equal", "dwa", "dwa"]})
    space = RecordedSpace.from_json(SearchSpace().describe())
    design = {"design": {"per_weighting": 2, "weightings": ["equal", "dwa", "scalarization"]}}
    assert study_budget(design, trials) == Budget(2, {"equal": 2, "dwa": 3})
    assert study_budget({"design": {"per_weighting": None}}, trials).per_weighting is None
    assert study_budget({}, trials).per_weighting is None  # a study from before the design was recorded
    assert study_weightings(design, space) == ("equal", "dwa", "scalarization")
    assert study_weightings({}, space) == space.choices("weighting")
