"""The confirmed ranking, the comparisons in words and the winner's curse from reproduce tables."""

from __future__ import annotations

from pathlib import Path

from analysis.confirmation import (
    comparison_sentence,
    comparison_sentences,
    ranking_table,
    read_confirmation,
    winners_curse,
)
from study.record import StudyFolder


def write_tables(root: Path) -> StudyFolder:
    folder = root / "reproduce"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configs.csv").write_text(
        "config,trial,trial_id,roles,weighting,study_last,study_tail,state\n"
        "t4,4,id4,top 1,dwa,0.55,0.53,completed\n"
        "paper,0,id0,paper; top 2,equal,0.50,0.49,completed\n"
        "seed_report,1,id1,seed_report,dwa,0.31,0.30,stopped_early\n"
    )
    (folder / "summary.csv").write_text(
        "config,metric,mean,std,ci_low,ci_high,n\n"
        "t4,score,0.48,0.03,0.405,0.555,3\n"
        "paper,score,0.50,0.02,0.45,0.55,3\n"
        "seed_report,score,0.40,0.02,0.35,0.45,3\n"
        "t4,miou,0.512,0.01,0.487,0.537,3\n"
        "paper,miou,0.504,0.01,0.479,0.529,3\n"
        "seed_report,miou,0.45,0.01,0.425,0.475,3\n"
    )
    (folder / "comparisons.csv").write_text(
        "comparison,metric,mean_diff,ci_low,ci_high,p_value,n\n"
        "best dwa (t4) vs best equal (paper),score,-0.02,-0.09,0.05,0.41,3\n"
        "best dwa (t4) vs best equal (paper),miou,0.008,-0.012,0.028,0.2,3\n"
        "t4 vs paper,miou,0.008,-0.012,0.028,0.2,3\n"
        "t4 vs paper,abs_err,-0.002,-0.003,-0.001,0.01,3\n"
    )
    return StudyFolder(root)


def test_ranking_by_the_confirmed_mean_with_intervals(tmp_path):
    table = ranking_table(read_confirmation(write_tables(tmp_path)), "score", "max")
    assert table["configuration"].tolist() == ["paper", "t4", "seed_report"]  # not the study's order
    assert table.loc[1, "retrained as"] == "top 1"
    assert table.loc[0, "score in the study"] == "0.500"
    assert table.loc[1, "score (0 = trivial, 1 = perfect), mean [95 % CI]"] == "0.480 [0.405, 0.555]"
    assert table.loc[1, "mIoU % (accumulated), mean [95 % CI]"] == "51.20 [48.70, 53.70]"
    assert table.loc[0, "seeds"] == 3


def test_comparisons_in_words(tmp_path):
    confirmation = read_confirmation(write_tables(tmp_path))
    row = confirmation.comparisons.iloc[1]
    assert comparison_sentence(row) == (
        "best dwa (t4) vs best equal (paper): +0.80 mIoU %, 95 % CI -1.20 to +2.80, "
        "not significant over 3 seeds (p = 0.20)"
    )
    lower_error = comparison_sentence(confirmation.comparisons.iloc[3])
    assert lower_error.endswith("significant over 3 seeds (p = 0.010; better)")
    sentences = comparison_sentences(confirmation)
    assert sentences[0].startswith("best dwa (t4) vs best equal (paper): -0.020 score")
    assert len(sentences) == 4


def test_the_winners_curse_in_one_line(tmp_path):
    line = winners_curse(read_confirmation(write_tables(tmp_path)), "score")
    assert "best trial t4 (trial 4) reached score 0.550 in the study" in line
    assert "(0.530 as the mean of its last 10 epochs)" in line
    assert "retrained on 3 fresh seeds it reaches 0.480 [0.405, 0.555]" in line


def test_a_folder_without_a_confirmation(tmp_path):
    assert read_confirmation(StudyFolder(tmp_path)) is None
