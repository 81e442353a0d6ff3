"""The published rows against docs/design.md's table and issue #10 (copied by hand, with conventions)."""

from __future__ import annotations

import math

import pytest

from analysis.columns import COMPARISON_METRICS
from analysis.published import (
    DEFAULT_DELTA_M_ROW,
    REFERENCES,
    delta_m_keys,
    reference,
    reference_frame,
    table_rows,
)
from mtan.metrics import ACCUMULATED, DELTA_M_KEYS, PAPER_2019, delta_m, metric

# docs/design.md, "Published numbers": (mIoU, pix acc, abs err, rel err), percent / units / ratio as
# published.
PUBLISHED = {
    "paper_equal": (53.04, 91.11, 0.0144, 33.63),
    "paper_dwa": (53.29, 91.09, 0.0144, 34.14),
    "paper_uncertainty": (53.86, 91.10, 0.0144, 35.72),
    "paper_one_task": (51.09, 90.69, 0.0158, 34.17),
    "seed_dwa": (68.09, 91.14, 0.0161, 38.39),
    "seed_equal": (67.76, 91.15, 0.0160, 38.01),
    "nash_equal": (75.18, 93.49, 0.0155, 46.77),
    "nash_dwa": (75.24, 93.52, 0.0160, 44.37),
    "nash_uncertainty": (72.02, 92.85, 0.0140, 30.13),
    "nash_stl": (74.01, 93.16, 0.0125, 27.77),
}


def test_exactly_the_rows_with_a_known_source() -> None:
    assert [r.key for r in REFERENCES] == list(PUBLISHED)
    for row in REFERENCES:
        for text in (row.source, row.dataset, row.backbone, row.seg_convention, row.depth_averaging):
            assert text.strip()
        assert row.resolution == "128x256"


@pytest.mark.parametrize("key", list(PUBLISHED))
def test_numbers_and_the_convention_they_sit_under(key: str) -> None:
    row = reference(key)
    miou, pix, abs_err, rel_err = PUBLISHED[key]
    paper = row.seg_convention == PAPER_2019
    seg = ("miou_2019", "pixel_acc_2019") if paper else ("miou", "pixel_acc")
    depth = {"abs_err_batch_mean": abs_err, "rel_err_batch_mean": rel_err}
    assert row.values == {seg[0]: miou, seg[1]: pix, **depth}
    assert row.uncertain <= set(row.values)


def test_paper_is_2019_and_seed_report_is_marked_uncertain() -> None:
    for key in ("paper_equal", "paper_dwa", "paper_uncertainty", "paper_one_task"):
        row = reference(key)
        assert row.seg_convention == PAPER_2019 and row.epochs == 200
        assert "no augmentation" in row.dataset and "one seed" in row.evaluation
        assert all(metric(m).convention == PAPER_2019 for m in row.values)  # the keys the tool files so
    assert reference("seed_dwa").epochs == 100
    assert {"miou", "pixel_acc"} <= reference("seed_dwa").uncertain
    for key in ("nash_equal", "nash_dwa", "nash_uncertainty", "nash_stl"):
        row = reference(key)
        assert row.seg_convention == ACCUMULATED and "miou" not in row.uncertain
        assert "with augmentation" in row.dataset and "3 seeds" in row.evaluation
        assert "last 10 epochs" in row.evaluation


def test_rows_of_a_group_share_their_protocol() -> None:
    fields = ("dataset", "resolution", "epochs", "seg_convention", "depth_averaging", "evaluation")
    for row in REFERENCES:
        for other in REFERENCES:
            if other.group == row.group:
                assert [getattr(row, f) for f in fields] == [getattr(other, f) for f in fields]


def test_frame_leaves_the_other_convention_empty() -> None:
    frame = reference_frame()
    assert list(frame.index) == list(PUBLISHED)
    assert set(COMPARISON_METRICS) <= set(frame.columns)
    assert frame.loc["paper_equal", "miou_2019"] == 53.04
    assert math.isnan(frame.loc["paper_equal", "miou"])
    assert math.isnan(frame.loc["nash_stl", "miou_2019"])
    assert frame.loc["nash_stl", "rel_err_batch_mean"] == 27.77


def test_unknown_key_names_the_known_ones() -> None:
    assert reference(DEFAULT_DELTA_M_ROW).key == "nash_stl"
    with pytest.raises(KeyError, match="paper_equal"):
        reference("paper_gradnorm")


def test_each_rows_numbers_in_delta_m_keys_order_measure_the_same_as_those_keys() -> None:
    for row in REFERENCES:
        keys = delta_m_keys(row)
        assert len(keys) == len(DELTA_M_KEYS)
        for theirs, ours in zip(keys, DELTA_M_KEYS, strict=True):
            a, b = metric(theirs), metric(ours)
            assert (a.task, a.higher_is_better, a.unit, a.percent) == (
                b.task,
                b.higher_is_better,
                b.unit,
                b.percent,
            )


def test_the_nash_mtl_depth_errors_are_per_batch_means_not_delta_m_keys_per_pixel_ones() -> None:
    # CAGrad's CityScapes code (Cranial-XIX/CAGrad cityscapes/utils.py), whose STL row the Nash-MTL table
    # carries, and Nash-MTL's own NYUv2 trainer average each batch's error (sum over its valid pixels /
    # their count) over the batches: the per-batch mean, this project's `*_batch_mean` keys.
    for row in table_rows():
        assert delta_m_keys(row) == ("miou", "pixel_acc", "abs_err_batch_mean", "rel_err_batch_mean")
        assert row.depth_averaging.startswith("per-batch mean")
    assert DELTA_M_KEYS[2:] == ("abs_err", "rel_err")  # the project's own Delta_m: per-pixel means


def test_the_table_rows_of_the_single_task_row_and_their_delta_m() -> None:
    rows = table_rows()
    assert [r.key for r in rows] == ["nash_stl", "nash_equal", "nash_dwa", "nash_uncertainty"]
    stl = rows[0]
    published = {"nash_equal": 22.60, "nash_dwa": 21.45}  # Nash-MTL Table 3's own Delta_m
    for row in rows[1:3]:
        assert delta_m(row.values, stl.values, delta_m_keys(row)) == pytest.approx(
            published[row.key], abs=0.05
        )
