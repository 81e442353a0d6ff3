"""One line per finished trial while a study runs (Tune's own tables are switched off)."""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from study.space import TRIAL_NUMBER


class TrialLines(Callback):
    """Print a line when a trial ends: how, after how many epochs, with what value of the metric."""

    def __init__(self, metric: str, num_samples: int, max_epochs: int) -> None:
        self._metric = metric
        self._num_samples = num_samples
        self._max_epochs = max_epochs
        self._ended = 0
        self._start = time.monotonic()

    def _line(self, trial: Any, how: str) -> None:
        self._ended += 1
        result = trial.last_result or {}
        epochs = result.get("epoch", 0)
        value = result.get(self._metric)
        shown = f"{self._metric} {value:.4f}" if isinstance(value, float) else f"{self._metric} -"
        config = dict(trial.config or {})
        number = config.pop(TRIAL_NUMBER, "?")
        point = ", ".join(f"{k}={_short(v)}" for k, v in sorted(config.items()))
        elapsed = time.monotonic() - self._start
        print(
            f"[{elapsed:6.0f} s] trial {number} {how} after {epochs}/{self._max_epochs} epochs, "
            f"{shown} ({self._ended} ended this run; {self._num_samples} in the study) {point}",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial ended without error: completed or stopped early by ASHA."""
        epochs = (trial.last_result or {}).get("epoch", 0)
        self._line(trial, "completed" if epochs >= self._max_epochs else "stopped early")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed for good (no retry left)."""
        self._line(trial, "FAILED")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed and is retried from its last checkpoint (e.g. its node was lost)."""
        number = (trial.config or {}).get(TRIAL_NUMBER, "?")
        print(f"trial {number} failed and is retried from its last checkpoint", flush=True)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
