"""Comparison reports of an MTAN study: tables against the published rows, figures, the report.

The names in `__all__` are the notebook API; docs/results.md, "From Python", shows them at work (a test
runs that example). `plots` (the figures, matplotlib and seaborn) loads on first use, so that the tables
do not pull in matplotlib. The modules and their jobs are listed in docs/design.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from analysis.load import StudyResults, load_optuna_study, load_results
from analysis.published import REFERENCES, ReferenceRow, reference, reference_frame
from analysis.tables import (
    best_metrics,
    comparison_table,
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
