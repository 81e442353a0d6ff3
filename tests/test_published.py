"""The published rows against docs/design.md's table (copied here by hand, with their conventions)."""

from __future__ import annotations

import math

import pytest

from analysis.columns import COMPARISON_METRICS
from analysis.published import DEFAULT_BASELINE, REFERENCES, reference, reference_frame

# docs/design.md, "Published numbers": (mIoU, pix acc, abs err, rel err), percent / units / ratio as
# published.
PUBLISHED = {
    "paper_equal": (53.04, 91.11, 0.0144, 33.63),
    "paper_dwa": (53.29, 91.09, 0.0144, 34.14),
    "seed_dwa": (68.09, 91.14, 0.0161, 38.39),
    "seed_equal": (67.76, 91.15, 0.0160, 38.01),
    "stl_cagrad": (74.01, 93.16, 0.0125, 27.77),
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
    per_image = row.seg_convention == "per-image"
    seg = ("miou_per_image", "pixel_acc_per_image") if per_image else ("miou", "pixel_acc")
    depth = {"abs_err_batch_mean": abs_err, "rel_err_batch_mean": rel_err}
    assert row.values == {seg[0]: miou, seg[1]: pix, **depth}
    assert row.uncertain <= set(row.values)


def test_paper_is_per_image_and_seed_report_is_marked_uncertain() -> None:
    assert reference("paper_equal").seg_convention == "per-image"
    assert reference("paper_equal").epochs == 200
    assert reference("seed_dwa").epochs == 100
    assert {"miou", "pixel_acc"} <= reference("seed_dwa").uncertain
    assert "miou" not in reference("stl_cagrad").uncertain


def test_rows_of_a_group_share_their_protocol() -> None:
    fields = ("dataset", "resolution", "epochs", "backbone", "seg_convention", "depth_averaging")
    for row in REFERENCES:
        for other in REFERENCES:
            if other.group == row.group:
                assert [getattr(row, f) for f in fields] == [getattr(other, f) for f in fields]


def test_frame_leaves_the_other_convention_empty() -> None:
    frame = reference_frame()
    assert list(frame.index) == list(PUBLISHED)
    assert set(COMPARISON_METRICS) <= set(frame.columns)
    assert frame.loc["paper_equal", "miou_per_image"] == 53.04
    assert math.isnan(frame.loc["paper_equal", "miou"])
    assert math.isnan(frame.loc["stl_cagrad", "miou_per_image"])
    assert frame.loc["stl_cagrad", "rel_err_batch_mean"] == 27.77


def test_unknown_key_names_the_known_ones() -> None:
    assert reference(DEFAULT_BASELINE).key == "stl_cagrad"
    with pytest.raises(KeyError, match="paper_equal"):
        reference("paper_uncertainty")
