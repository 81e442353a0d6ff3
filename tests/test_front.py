"""The Pareto front of a multi-objective study (`study.front`): membership against a brute-force loop,
the hypervolume against an area worked out by hand, the intervals' dominance, the objectives' flag."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pandas as pd
import pytest

from mtan.errors import UserError
from mtan.metrics import METRICS
from study.front import (
    directions,
    hypervolume,
    hypervolume_history,
    interval_dominated,
    non_dominated,
    pareto_column,
    parse_objectives,
    reference_point,
)


def brute_force_front(points: list[list[float]], maximise: list[bool]) -> list[bool]:
    """The definition, one pair at a time: a point is on the front unless another is at least as good in
    every objective and better in one; a point with a NaN is never on it and beats nothing."""

    def at_least(a: float, b: float, up: bool) -> bool:
        return a >= b if up else a <= b

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(at_least(x, y, up) for x, y, up in zip(a, b, maximise, strict=True)) and a != b

    usable = [not any(math.isnan(v) for v in p) for p in points]
    return [
        usable[i]
        and not any(usable[j] and dominates(points[j], points[i]) for j in range(len(points)) if j != i)
        for i in range(len(points))
    ]


def test_front_membership_of_a_planted_set_with_ties_and_a_one_objective_winner():
    maximise = [True, False]  # mIoU up, abs err down
    points = [
        [0.50, 0.020],  # 0: on the front
        [0.50, 0.020],  # 1: the same point again: neither beats the other, both stay
        [0.60, 0.030],  # 2: on the front: more mIoU, more error
        [0.90, 0.500],  # 3: only better in one objective (the best mIoU, the worst error): on the front
        [0.40, 0.010],  # 4: the lowest error: on the front
        [0.50, 0.025],  # 5: ties 0 in mIoU, worse in error: dominated
        [0.45, 0.030],  # 6: worse than 0 in both: dominated
        [math.nan, 0.001],  # 7: a missing value: never on the front, dominates nothing
    ]
    expected = [True, True, True, True, True, False, False, False]
    assert brute_force_front(points, maximise) == expected
    assert non_dominated(np.array(points), maximise).tolist() == expected


@pytest.mark.parametrize("objectives", [2, 3, 4])
def test_front_membership_matches_the_brute_force_loop_on_random_sets(objectives):
    rng = random.Random(objectives)
    for _ in range(150):
        maximise = [rng.random() < 0.5 for _ in range(objectives)]
        # few distinct values: many ties in one objective or in all
        points = [[float(rng.randint(0, 4)) for _ in range(objectives)] for _ in range(rng.randint(1, 12))]
        assert non_dominated(np.array(points), maximise).tolist() == brute_force_front(points, maximise)


def test_the_pareto_column_marks_only_eligible_rows():
    table = pd.DataFrame(
        {
            "state": ["completed", "stopped_early", "completed", "failed", "completed"],
            "tail_miou": [0.5, 0.9, 0.6, math.nan, 0.4],
            "tail_abs_err": [0.02, 0.001, 0.03, math.nan, 0.05],
        }
    )
    front = pareto_column(table, ("miou", "abs_err"), table["state"] == "completed")
    # the stopped trial would beat them all, but only completed trials count
    assert front.tolist() == [True, False, True, False, False]


def test_the_hypervolume_of_a_hand_worked_2d_front():
    maximise = [True, False]
    reference = [0.1, 0.08]  # the trivial predictors: mIoU 0.1, abs err 0.08
    points = np.array(
        [
            [0.5, 0.02],  # A: box 0.1..0.5 x 0.02..0.08
            [0.6, 0.03],  # B: box 0.1..0.6 x 0.03..0.08
            [0.3, 0.05],  # C: inside A's box, adds nothing
            [0.05, 0.01],  # D: worse than the reference in mIoU, adds nothing
        ]
    )
    area_a = (0.5 - 0.1) * (0.08 - 0.02)  # 0.024
    area_b = (0.6 - 0.1) * (0.08 - 0.03)  # 0.025
    overlap = (0.5 - 0.1) * (0.08 - 0.03)  # 0.020
    assert hypervolume(points, reference, maximise) == pytest.approx(area_a + area_b - overlap)  # 0.029
    assert hypervolume(points[:1], reference, maximise) == pytest.approx(area_a)
    assert hypervolume(points[3:], reference, maximise) == 0.0
    assert hypervolume(np.empty((0, 2)), reference, maximise) == 0.0

    history = hypervolume_history(list(enumerate(points)), reference, maximise)
    assert history["completed"].tolist() == [1, 2, 3, 4] and history["trial"].tolist() == [0, 1, 2, 3]
    assert history["front_size"].tolist() == [1, 2, 2, 3]  # D is on the front, outside the reference
    assert history["hypervolume"].tolist() == pytest.approx([area_a, 0.029, 0.029, 0.029])


def test_a_configuration_is_dominated_only_by_intervals_better_in_every_objective():
    def rows(name, miou, err):
        return [
            {"config": name, "metric": "miou", "ci_low": miou[0], "ci_high": miou[1]},
            {"config": name, "metric": "abs_err", "ci_low": err[0], "ci_high": err[1]},
            {"config": name, "metric": "score", "ci_low": 0.0, "ci_high": 9.0},  # not an objective
        ]

    summary = pd.DataFrame(
        rows("a", (0.50, 0.55), (0.010, 0.012))
        + rows("b", (0.40, 0.45), (0.020, 0.030))  # both intervals wholly worse than a's: dominated
        + rows("c", (0.40, 0.52), (0.020, 0.030))  # mIoU overlaps a's: stays
        + rows("d", (math.nan, math.nan), (math.nan, math.nan))  # one seed: no interval, no claim
    )
    assert interval_dominated(summary, ("miou", "abs_err")) == {"a": [], "b": ["a"], "c": [], "d": []}


def test_the_objectives_flag():
    assert parse_objectives("miou,abs_err") == ("miou", "abs_err")
    assert parse_objectives(" miou , rel_err,score") == ("miou", "rel_err", "score")
    with pytest.raises(UserError, match="--objectives: unknown metric 'accuracy'"):
        parse_objectives("miou,accuracy")
    with pytest.raises(UserError, match="--objectives needs two or more metrics"):
        parse_objectives("miou")
    with pytest.raises(UserError, match="--objectives names miou twice"):
        parse_objectives("miou,abs_err,miou")


def test_directions_and_the_reference_point_come_from_the_metric_table():
    for a, b in itertools.permutations(("miou", "abs_err", "rel_err", "score"), 2):
        expected = ["maximize" if METRICS[k].higher_is_better else "minimize" for k in (a, b)]
        assert directions((a, b)) == expected
    assert directions(("miou", "abs_err")) == ["maximize", "minimize"]  # as published tables read them
    baselines = {"miou": 0.08, "abs_err": 0.08}
    assert reference_point(baselines, ("abs_err", "score", "miou")) == [0.08, 0.0, 0.08]  # score 0: trivial
