"""What a confirmation retrains and compares (`study.reproduce.plan`), on planted trials and candidates:
the K best of each weighting method, the published configurations beside them, and the comparisons
written out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mtan.errors import UserError
from study.reproduce.plan import Candidate, check_counts, comparison_pairs, selected_roles, top_notes

BEST = {"metric": "score", "mode": "max", "trial": 4}


def planted_table() -> pd.DataFrame:
    """Ten trials of at most 8 epochs: 0 and 1 the published ones (equal, dwa); the uncertainty trials
    never completed."""
    rows = [
        (0, "equal", "completed", 8, 0.10),
        (1, "dwa", "stopped_early", 2, 0.05),
        (2, "dwa", "completed", 8, 0.30),
        (3, "uncertainty", "stopped_early", 2, 0.90),  # the highest value, but stopped at the first rung
        (4, "dwa", "completed", 8, 0.40),
        (5, "equal", "completed", 8, 0.20),
        (6, "uncertainty", "failed", 1, math.nan),
        (7, "dwa", "completed", 8, 0.30),  # ties with trial 2: the earlier trial ranks first
        (8, "equal", "completed", 8, math.nan),  # completed without a value: not ranked
        (9, "uncertainty", "stopped_early", 4, 0.50),  # trained longer than trial 3: ranks before it
    ]
    return pd.DataFrame(rows, columns=["trial", "weighting", "state", "epochs", "last_score"])


def test_the_best_of_each_method_then_the_published_ones():
    roles = selected_roles(BEST, planted_table(), None, 2, ("equal", "dwa", "uncertainty"))
    assert roles == {
        5: ["best 1 of equal"],
        0: ["best 2 of equal", "paper"],
        4: ["best 1 of dwa"],
        2: ["best 2 of dwa"],
        9: ["best 1 of uncertainty"],  # none completed: the stopped ones, the longest trained first
        3: ["best 2 of uncertainty"],
        1: ["seed_report"],  # stopped early, dwa has completed trials: retrained as published only
    }
    assert list(roles) == [5, 0, 4, 2, 9, 3, 1]  # method by method, best first, then the published ones


def test_the_modes_before_it_are_unchanged():
    table = planted_table()
    assert selected_roles(BEST, table, 2) == {4: ["top 1"], 2: ["top 2"], 0: ["paper"], 1: ["seed_report"]}
    assert selected_roles(BEST, table, None) == {4: ["top 1"]}
    assert selected_roles({**BEST, "trial": 0}, table, None) == {0: ["top 1", "paper"]}


def test_top_says_when_fewer_trials_completed_than_asked_for():
    table = planted_table()  # 5 completed trials with a value (0, 2, 4, 5, 7)
    assert top_notes(table, BEST, 5) == () and top_notes(table, BEST, None) == ()
    (note,) = top_notes(table, BEST, 7)
    assert note.startswith("--top 7: 5 trial(s) of the study completed their budget, so 5 top trial(s)")
    (note,) = top_notes(table.assign(state="stopped_early"), BEST, 2)
    assert note.startswith("--top 2: 0 trial(s) of the study completed their budget")


def candidate(name: str, weighting: str, *roles: str) -> Candidate:
    return Candidate(name, 0, "", roles, weighting, math.nan, math.nan, "completed", {})


def test_each_method_against_tuned_equal_and_scalarization():
    candidates = [
        candidate("trial_003", "dwa", "best 1 of dwa"),
        candidate("trial_007", "dwa", "best 2 of dwa"),
        candidate("paper", "equal", "best 1 of equal", "paper"),
        candidate("trial_005", "equal", "best 2 of equal"),
        candidate("trial_009", "scalarization", "best 1 of scalarization"),
        candidate("trial_002", "uncertainty", "best 1 of uncertainty"),
        candidate("seed_report", "dwa", "seed_report"),
    ]
    assert comparison_pairs(candidates) == [
        ("best dwa (trial_003) vs best equal (paper)", "trial_003", "paper"),
        ("best scalarization (trial_009) vs best equal (paper)", "trial_009", "paper"),
        ("best uncertainty (trial_002) vs best equal (paper)", "trial_002", "paper"),
        ("best dwa (trial_003) vs best scalarization (trial_009)", "trial_003", "trial_009"),
        ("best uncertainty (trial_002) vs best scalarization (trial_009)", "trial_002", "trial_009"),
    ]


def test_without_scalarization_only_against_equal_and_a_published_config_is_no_method_best():
    roles = {  # name: (weighting, its one role); seed_report's method has no completed trial here
        "trial_005": ("equal", "best 1 of equal"),
        "trial_003": ("dwa", "best 1 of dwa"),
        "paper": ("equal", "paper"),
        "seed_report": ("uncertainty", "seed_report"),
    }
    candidates = [candidate(name, weighting, role) for name, (weighting, role) in roles.items()]
    only = ("best dwa (trial_003) vs best equal (trial_005)", "trial_003", "trial_005")
    assert comparison_pairs(candidates) == [only]


def test_top_mode_pairs_as_before():
    candidates = [
        candidate("trial_003", "dwa", "top 1"),
        candidate("trial_009", "scalarization", "top 2"),
        candidate("trial_005", "equal", "top 3"),
        candidate("paper", "equal", "paper"),
        candidate("seed_report", "dwa", "seed_report"),
    ]
    methods = {"trial_003": "dwa", "trial_009": "scalarization", "trial_005": "equal"}
    best = [("trial_003", "trial_005"), ("trial_009", "trial_005"), ("trial_003", "trial_009")]
    assert comparison_pairs(candidates) == [
        *((f"best {methods[a]} ({a}) vs best {methods[b]} ({b})", a, b) for a, b in best),
        *((f"{name} vs paper", name, "paper") for name in methods),  # then each top one against the paper's
    ]


@pytest.mark.parametrize(
    ("seeds", "top", "per_weighting_best", "line"),
    [
        (3, 2, 1, "--top and --per-weighting-best: give one (the K best overall, or of each method)"),
        (3, None, 0, "--per-weighting-best must be at least 1, got 0"),
        (0, None, 1, "--seeds must be at least 1, got 0"),
    ],
)
def test_bad_counts_in_one_line(seeds, top, per_weighting_best, line):
    with pytest.raises(UserError) as refused:
        check_counts(seeds, top, per_weighting_best)
    assert str(refused.value) == line
