"""Comparison reports of an MTAN study: tables against the published numbers, figures, report.

For a notebook::

    from analysis import load_results, comparison_table, delta_m_column, plots
    results = load_results("results/my_study")
    table = comparison_table(best_metrics(results.trials, results.best), results.reproduce)
    delta_m_column(table, "single-task baseline (STL, Nash-MTL table)")
    plots.plot_tradeoff(results.trials)

Modules: `reference` (published rows), `load` (a results directory into DataFrames), `tables` (pure
table functions, Delta_m), `optuna_study` (search scales, importances), `plots` (figures; the only
module that imports matplotlib/seaborn, loaded on first use), `report` (the command).
"""

from __future__ import annotations

import importlib
from typing import Any

from analysis.load import StudyResults, load_optuna_study, load_results
from analysis.reference import REFERENCES, ReferenceRow, reference, reference_frame
from analysis.tables import (
    best_metrics,
    comparison_table,
    delta_m,
    delta_m_column,
    format_comparison,
    pareto_front,
    protocol_differences,
    study_summary,
    top_configs,
    weighting_summary,
)

__all__ = [
    "REFERENCES",
    "ReferenceRow",
    "StudyResults",
    "best_metrics",
    "comparison_table",
    "delta_m",
    "delta_m_column",
    "format_comparison",
    "load_optuna_study",
    "load_results",
    "pareto_front",
    "plots",
    "protocol_differences",
    "reference",
    "reference_frame",
    "study_summary",
    "top_configs",
    "weighting_summary",
]


def __getattr__(name: str) -> Any:
    """`analysis.plots` on first use, so that the tables do not pull in matplotlib."""
    if name == "plots":
        return importlib.import_module("analysis.plots")
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
