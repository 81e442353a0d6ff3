"""The search space as the study recorded it in study.json (``space``, written by `study.space`): which
config columns results.csv has, their labels, scales (linear, log or logit), and the weightings each
applies to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtan.errors import UserError


@dataclass(frozen=True)
class SpaceColumn:
    """One config column of results.csv."""

    name: str
    label: str
    categorical: bool
    scale: str  # how the study spaced it: "linear", "log" or "logit" (study.json's "scale")
    weightings: tuple[str, ...] | None  # the weighting methods whose trials have it (None: all)
    choices: tuple[Any, ...] = ()  # a categorical column's searched values


@dataclass(frozen=True)
class RecordedSpace:
    """The config columns of a study, and the label of every searched parameter (Optuna's names)."""

    columns: tuple[SpaceColumn, ...]
    labels: Mapping[str, str]

    @classmethod
    def from_json(cls, value: Any, path: Path | str = "study.json") -> RecordedSpace:
        """The ``space`` entry of study.json; `UserError` naming the file when it is missing or malformed."""
        if not isinstance(value, Mapping) or not isinstance(value.get("columns"), list):
            raise UserError(f"{path}: no search space recorded ('space' with its 'columns')")
        try:
            columns = tuple(
                SpaceColumn(
                    name=str(c["name"]),
                    label=str(c["label"]),
                    categorical=bool(c["categorical"]),
                    scale=str(c.get("scale") or ("log" if c["log"] else "linear")),
                    weightings=tuple(c["weightings"]) if c.get("weightings") is not None else None,
                    choices=tuple(c.get("searched") or ()) if c["categorical"] else (),
                )
                for c in value["columns"]
            )
        except (KeyError, TypeError) as error:
            raise UserError(f"{path}: a column of the recorded space lacks {error}") from None
        labels = {str(k): str(v) for k, v in dict(value.get("labels") or {}).items()}
        return cls(columns, labels)

    @property
    def names(self) -> tuple[str, ...]:
        """The config columns, in results.csv's order."""
        return tuple(c.name for c in self.columns)

    @property
    def numeric(self) -> tuple[str, ...]:
        """The numeric config columns."""
        return tuple(c.name for c in self.columns if not c.categorical)

    def column(self, name: str) -> SpaceColumn | None:
        """The column `name`, or None."""
        return next((c for c in self.columns if c.name == name), None)

    def label(self, name: str) -> str:
        """The label of a config column or of a searched parameter; the name itself when unknown."""
        column = self.column(name)
        return column.label if column is not None else self.labels.get(name, name)

    def scale(self, name: str) -> str:
        """'linear', 'log' or 'logit': how the study spaced the column (a logit-scale value, scalarization's
        depth share, was searched uniformly in its logit); 'linear' for an unknown column."""
        column = self.column(name)
        return column.scale if column is not None else "linear"

    def choices(self, name: str) -> tuple[Any, ...]:
        """The values searched for a categorical column (e.g. the weighting methods); () when unknown."""
        column = self.column(name)
        return column.choices if column is not None else ()

    def weightings_of(self, name: str) -> tuple[str, ...] | None:
        """The weighting methods whose trials have the column (None: every trial)."""
        column = self.column(name)
        return column.weightings if column is not None else None
