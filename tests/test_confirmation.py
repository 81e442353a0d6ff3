"""The confirmed ranking, the comparisons in words and the winner's curse from reproduce tables written by
hand: significance from Holm's adjusted p-value, the study's best trial found in every mode, the
single-task networks kept out of the ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import confirmation
from study.record import StudyFolder
from study.reproduce.stats import SIGNIFICANCE

COMPARISONS = (
    "comparison,metric,mean_diff,ci_low,ci_high,p_value,p_holm,n\n"
    "best dwa (t4) vs best equal (paper),score,-0.02,-0.09,0.05,0.41,0.82,3\n"
    "best dwa (t4) vs best equal (paper),miou,0.008,-0.012,0.028,0.2,0.4,3\n"
    "t4 vs paper,miou,0.008,-0.012,0.028,0.2,0.4,3\n"
    "t4 vs paper,abs_err,-0.002,-0.003,-0.001,0.01,0.02,3\n"
    "best dwa (t4) vs best equal (paper),abs_err,-0.002,-0.003,-0.001,0.03,0.06,3\n"
)


def write_csvs(root: Path, **texts: str) -> StudyFolder:
    """reproduce/<name>.csv with each text of `texts` by name; the study folder of `root`."""
    folder = root / "reproduce"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.csv").write_text(text)
    return StudyFolder(root)


def write_tables(root: Path, comparisons: str = COMPARISONS) -> StudyFolder:
    return write_csvs(
        root,
        configs="config,trial,trial_id,roles,weighting,study_last,study_tail,state\n"
        "t4,4,id4,top 1,dwa,0.55,0.53,completed\n"
        "paper,0,id0,paper; top 2,equal,0.50,0.49,completed\n"
        "seed_report,1,id1,seed_report,dwa,0.31,0.30,stopped_early\n",
        summary="config,metric,mean,std,ci_low,ci_high,n\n"
        "t4,score,0.48,0.03,0.405,0.555,3\n"
        "paper,score,0.50,0.02,0.45,0.55,3\n"
        "seed_report,score,0.40,0.02,0.35,0.45,3\n"
        "t4,miou,0.512,0.01,0.487,0.537,3\n"
        "paper,miou,0.504,0.01,0.479,0.529,3\n"
        "seed_report,miou,0.45,0.01,0.425,0.475,3\n",
        comparisons=comparisons,
    )


def write_per_weighting_tables(root: Path) -> StudyFolder:
    """As `study.reproduce --per-weighting-best 1` writes them, with the single-task networks, whose
    weighting is equal like the paper's configuration."""
    return write_csvs(
        root,
        configs="config,trial,trial_id,roles,weighting,study_last,study_tail,state\n"
        "paper,0,id0,best 1 of equal; paper,equal,0.138,0.12,stopped_early\n"
        "trial_004,4,id4,best 1 of dwa,dwa,0.576,0.55,completed\n"
        "seed_report,1,id1,seed_report,dwa,0.31,0.30,stopped_early\n"
        "stl_segmentation,,,stl segmentation,equal,,,completed\n"
        "stl_depth,,,stl depth,equal,,,completed\n",
        summary="config,metric,mean,std,ci_low,ci_high,n\n"
        "paper,score,0.529,0.02,0.479,0.579,3\n"
        "trial_004,score,0.541,0.02,0.491,0.591,3\n"
        "seed_report,score,0.40,0.02,0.35,0.45,3\n"
        "stl_segmentation,miou,0.60,0.01,0.575,0.625,3\n"
        "stl_depth,abs_err,0.02,0.001,0.0175,0.0225,3\n",
        comparisons="comparison,metric,mean_diff,ci_low,ci_high,p_value,p_holm,n\n"
        "best dwa (trial_004) vs best equal (paper),score,0.012,-0.050,0.073,0.5,0.5,3\n",
    )


def test_ranking_by_the_confirmed_mean_with_intervals(tmp_path):
    table = confirmation.ranking_table(confirmation.read_confirmation(write_tables(tmp_path)), "score", "max")
    assert table["configuration"].tolist() == ["paper", "t4", "seed_report"]  # not the study's order
    assert table.loc[1, "retrained as"] == "top 1"
    assert table.loc[0, "score in the study"] == "0.500"
    assert table.loc[1, "score (0 = trivial, 1 = perfect), mean [95 % CI]"] == "0.480 [0.405, 0.555]"
    assert table.loc[1, "mIoU % (accumulated), mean [95 % CI]"] == "51.20 [48.70, 53.70]"
    assert table.loc[0, "seeds"] == 3


def test_the_ranking_says_the_epochs_of_a_study_value_cut_short_and_leaves_out_the_single_task_networks(
    tmp_path,
):
    confirmed = confirmation.read_confirmation(write_per_weighting_tables(tmp_path))
    epochs = {0: 3, 1: 9, 4: 24}  # the paper's trial stopped by ASHA at epoch 3 of 24
    table = confirmation.ranking_table(confirmed, "score", "max", study_epochs=epochs, max_epochs=24)
    assert table["configuration"].tolist() == ["trial_004", "paper", "seed_report"]
    shown = dict(zip(table["configuration"], table["score in the study"], strict=True))
    assert shown == {"trial_004": "0.576", "paper": "0.138 after 3 of 24 epochs",
                     "seed_report": "0.310 after 9 of 24 epochs"}  # fmt: skip


def test_comparisons_in_words_are_significant_by_holms_p(tmp_path):
    confirmed = confirmation.read_confirmation(write_tables(tmp_path))
    rows = confirmed.comparisons
    assert confirmation.comparison_sentence(rows.iloc[1]) == (
        "best dwa (t4) vs best equal (paper): +0.80 mIoU %, 95 % CI -1.20 to +2.80, "
        "not significant over 3 seeds (Holm p = 0.40)"
    )
    # raw p 0.01, Holm's 0.02: significant, and a lower error is better
    assert confirmation.comparison_sentence(rows.iloc[3]).endswith(
        "significant over 3 seeds (Holm p = 0.020; better)"
    )
    # raw p 0.03 would be significant at 0.05; Holm's 0.06 is not
    assert 0.03 < SIGNIFICANCE < 0.06
    assert confirmation.comparison_sentence(rows.iloc[4]).endswith(
        "not significant over 3 seeds (Holm p = 0.06)"
    )
    sentences = confirmation.comparison_sentences(confirmed)
    assert sentences[0].startswith("best dwa (t4) vs best equal (paper): -0.020 score")
    assert len(sentences) == 5


def test_an_older_comparisons_file_gets_holms_p_as_study_reproduce_computes_it(tmp_path):
    older = "\n".join(",".join(f for i, f in enumerate(line.split(",")) if i != 6) for line in
                      COMPARISONS.splitlines()) + "\n"  # fmt: skip
    assert "p_holm" not in older
    rows = confirmation.read_confirmation(write_tables(tmp_path, older)).comparisons
    # per metric, Holm by hand: miou 0.2, 0.2 -> 0.4, 0.4; abs_err 0.01, 0.03 -> 0.02, 0.03; score alone
    assert rows["p_holm"].tolist() == pytest.approx([0.41, 0.4, 0.4, 0.02, 0.03])


def test_the_winners_curse_in_one_line(tmp_path):
    line = confirmation.winners_curse(confirmation.read_confirmation(write_tables(tmp_path)), "score", 4)
    assert "best trial t4 (trial 4) reached score 0.550 in the study" in line
    assert "(0.530 as the mean of its last 10 epochs)" in line
    assert "retrained on 3 fresh seeds it reaches 0.480 [0.405, 0.555]" in line


def test_the_winners_curse_of_the_best_of_each_method(tmp_path):
    confirmed = confirmation.read_confirmation(write_per_weighting_tables(tmp_path))
    line = confirmation.winners_curse(confirmed, "score", 4)  # role `best 1 of dwa`, no `top 1`
    assert line.startswith("Winner's curse: the study's best trial trial_004 reached score 0.576 in the")
    assert "it reaches 0.541 [0.491, 0.591]" in line
    assert (
        confirmation.winners_curse(confirmed, "score", 7) is None
    )  # a best trial the confirmation did not retrain


def test_the_best_of_each_method_and_the_single_task_networks(tmp_path):
    confirmed = confirmation.read_confirmation(write_per_weighting_tables(tmp_path))
    assert confirmation.single_task_configs(confirmed) == {
        "segmentation": "stl_segmentation",
        "depth": "stl_depth",
    }
    # the single-task networks' weighting is equal, yet the paper's configuration is equal's best
    assert confirmation.best_of_each_method(confirmed) == {"equal": "paper", "dwa": "trial_004"}
    assert confirmation.method_comparisons(confirmed) == [
        ("best dwa (trial_004) vs best equal (paper)", "dwa", "equal")
    ]
    top = confirmation.read_confirmation(write_tables(tmp_path / "top"))
    assert confirmation.best_of_each_method(top) == {
        "dwa": "t4",
        "equal": "paper",
    }  # the first of each: top 1, top 2
    assert confirmation.single_task_configs(top) == {}


def test_a_folder_without_a_confirmation(tmp_path):
    assert confirmation.read_confirmation(StudyFolder(tmp_path)) is None
