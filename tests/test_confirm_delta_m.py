"""Delta_m in a confirmation's tables (`study.reproduce.tables`), worked by hand for 3 seeds: each
configuration against the single-task runs of the same seed, its 95 % interval over the seeds, and the
paired difference of two configurations' Delta_m, in a Holm family of its own.

Delta_m = (100 / 4) * (-(miou - miou_stl) / miou_stl - (pix - pix_stl) / pix_stl
                       + (abs - abs_stl) / abs_stl + (rel - rel_stl) / rel_stl)   (Maninis et al. 2019, Eq. 4)

The single-task runs (segmentation values from stl_segmentation, depth from stl_depth):
    seed   miou  pix   abs_err  rel_err
    11     0.50  0.80  0.020    0.40
    12     0.40  0.80  0.025    0.50
    13     0.50  0.50  0.010    0.20
trial_003 (A):
    11     0.55  0.84  0.021    0.38   terms -0.10, -0.05, +0.05, -0.05: sum -0.15, Delta_m -3.75
    12     0.42  0.80  0.020    0.60   terms -0.05,  0,    -0.20, +0.20: sum -0.05, Delta_m -1.25
    13     0.45  0.55  0.011    0.20   terms +0.10, -0.10, +0.10,  0:    sum +0.10, Delta_m +2.50
A's Delta_m over the seeds: mean -2.5 / 3 = -0.833333; deviations -2.916667, -0.416667, 3.333333, squares
8.506944 + 0.173611 + 11.111111 = 19.791667, std = sqrt(19.791667 / 2) = 3.145764; with
t_{0.975,2} = 4.302652729911275 the half width is 4.302653 * 3.145764 / sqrt(3) = 7.814512:
[-8.647845, 6.981179].

trial_005 (B) is A with a lower mIoU, miou_B = miou_A - 0.04 * miou_stl (0.53, 0.404, 0.45 at seed 13 the
same as A): its miou term is 0.04 higher at seeds 11 and 12, Delta_m 1 higher: -2.75, -0.25, +2.50.
trial_007 (C) is A with miou_C = miou_A - 0.04 k miou_stl, k = 1, 2, 3 (0.53, 0.388, 0.39): Delta_m
-2.75, +0.75, +5.50.
A - B: -1, -1, 0: mean -0.666667, std sqrt((1/9 + 1/9 + 4/9) / 2) = sqrt(1/3) = 0.577350, standard error
1/3, half width 4.302653 / 3 = 1.434218; t = -2, and with 2 degrees of freedom the two-sided p-value is
1 - |t| / sqrt(2 + t^2) = 1 - 2 / sqrt(6) = 0.183503.
A - C: -1, -2, -3: mean -2, std 1, t = -2 sqrt(3), p = 1 - 2 sqrt(3) / sqrt(14) = 0.074180.
Holm over Delta_m's two comparisons: 0.074180 * 2 = 0.148360, then max(0.148360, 0.183503 * 1) = 0.183503.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mtan.metrics import METRIC_KEYS
from study.record import COMPARISONS_CSV, CONFIGS_CSV, SEEDS_CSV, SUMMARY_CSV
from study.reproduce.plan import Candidate, ConfirmationPlan
from study.reproduce.tables import DELTA_M, confirmation_tables

T_975_DF2 = 4.302652729911275
SEEDS = (11, 12, 13)
STL = {
    "stl_segmentation": {"miou": (0.50, 0.40, 0.50), "pixel_acc": (0.80, 0.80, 0.50)},
    "stl_depth": {"abs_err": (0.020, 0.025, 0.010), "rel_err": (0.40, 0.50, 0.20)},
}
A = {"miou": (0.55, 0.42, 0.45), "pixel_acc": (0.84, 0.80, 0.55), "abs_err": (0.021, 0.020, 0.011)}
A["rel_err"] = (0.38, 0.60, 0.20)
CONFIGS = {
    "trial_003": A,
    "trial_005": {**A, "miou": (0.53, 0.404, 0.45)},
    "trial_007": {**A, "miou": (0.53, 0.388, 0.39)},
    **STL,
}


def candidate(name: str, task: str | None = None) -> Candidate:
    config = {"weighting": "equal", "epochs": 3, **({"single_task": task} if task else {})}
    roles = (f"stl {task}",) if task else ("top 1",)
    return Candidate(name, 0, "", roles, "equal", math.nan, math.nan, "", config)


PLAN = ConfirmationPlan(
    metric="score",
    mode="max",
    candidates=(candidate("trial_003"), candidate("trial_005"), candidate("trial_007")),
    seeds=SEEDS,
    pairs=(("A vs B", "trial_003", "trial_005"), ("A vs C", "trial_003", "trial_007")),
    notes=(),
    single_task=(candidate("stl_segmentation", "segmentation"), candidate("stl_depth", "depth")),
)


def per_seed(configs: dict = CONFIGS) -> pd.DataFrame:
    """seeds.csv's rows as the runs give them: a metric a run does not have is NaN."""
    return pd.DataFrame(
        [
            {
                "config": name,
                "seed": seed,
                "epochs": 3,
                **{k: values.get(k, [math.nan] * 3)[i] for k in METRIC_KEYS},
            }
            for name, values in configs.items()
            for i, seed in enumerate(SEEDS)
        ]
    )


def test_each_configurations_delta_m_against_the_single_task_runs_of_its_seed():
    tables = confirmation_tables(PLAN, per_seed())
    seeds = tables[SEEDS_CSV].set_index(["config", "seed"])[DELTA_M]
    assert seeds["trial_003"].tolist() == pytest.approx([-3.75, -1.25, 2.5], abs=1e-9)
    assert seeds["trial_005"].tolist() == pytest.approx([-2.75, -0.25, 2.5], abs=1e-9)
    assert seeds["trial_007"].tolist() == pytest.approx([-2.75, 0.75, 5.5], abs=1e-9)
    assert seeds["stl_segmentation"].isna().all() and seeds["stl_depth"].isna().all()
    assert tables[CONFIGS_CSV]["roles"].tolist()[-2:] == ["stl segmentation", "stl depth"]


def test_the_95_percent_interval_of_delta_m_over_three_seeds():
    summary = confirmation_tables(PLAN, per_seed())[SUMMARY_CSV].set_index(["config", "metric"])
    row = summary.loc[("trial_003", DELTA_M)]
    half = T_975_DF2 * 3.145764348029479 / math.sqrt(3)
    assert half == pytest.approx(7.814512, abs=1e-6)
    assert row["mean"] == pytest.approx(-2.5 / 3, abs=1e-9)
    assert row["std"] == pytest.approx(math.sqrt(19.791666666666667 / 2), abs=1e-9)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-8.647845, 6.981179), abs=1e-6)
    assert row["n"] == 3
    assert summary.loc[("stl_depth", DELTA_M), "n"] == 0  # a baseline has no Delta_m of its own
    assert summary.loc[("stl_depth", "abs_err"), "mean"] == pytest.approx(0.055 / 3)


def test_the_paired_difference_of_two_configurations_delta_m_in_its_own_family():
    comparisons = confirmation_tables(PLAN, per_seed())[COMPARISONS_CSV].set_index(["metric", "comparison"])
    ab, ac = comparisons.loc[(DELTA_M, "A vs B")], comparisons.loc[(DELTA_M, "A vs C")]
    assert ab["mean_diff"] == pytest.approx(-2 / 3, abs=1e-9)
    assert (ab["ci_low"], ab["ci_high"]) == pytest.approx((-2 / 3 - T_975_DF2 / 3, -2 / 3 + T_975_DF2 / 3))
    assert ab["p_value"] == pytest.approx(1 - 2 / math.sqrt(6), abs=1e-6)
    assert ac["p_value"] == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14), abs=1e-6)
    # Holm over Delta_m's two comparisons alone, not with the other metrics' comparisons
    assert (ab["p_holm"], ac["p_holm"]) == pytest.approx((0.183503, 0.148360), abs=1e-6)
    assert ab["n"] == 3


def test_a_missing_or_zero_baseline_leaves_that_seed_out():
    missing = per_seed()
    missing = missing[~((missing["config"] == "stl_depth") & (missing["seed"] == 11))]
    seeds = confirmation_tables(PLAN, missing)[SEEDS_CSV].set_index(["config", "seed"])[DELTA_M]
    assert math.isnan(seeds[("trial_003", 11)]) and seeds[("trial_003", 12)] == pytest.approx(-1.25)
    summary = confirmation_tables(PLAN, missing)[SUMMARY_CSV].set_index(["config", "metric"])
    assert summary.loc[("trial_003", DELTA_M), "n"] == 2
    zero = {**CONFIGS, "stl_segmentation": {**STL["stl_segmentation"], "miou": (0.0, 0.40, 0.50)}}
    seeds = confirmation_tables(PLAN, per_seed(zero))[SEEDS_CSV].set_index(["config", "seed"])[DELTA_M]
    assert math.isnan(seeds[("trial_003", 11)])  # no relative change from 0: undefined, not an error
