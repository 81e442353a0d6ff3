"""Loss weighting methods, found by name in `WEIGHTINGS`; each declares its own hyperparameters.

- ``equal``: L = sum_k L_k.
- ``dwa``: Dynamic Weight Average (MTAN Sec. 3.3, Eq. 3): lambda_k(t) = K exp(w_k(t-1)/T) /
  sum_i exp(w_i(t-1)/T) with w_k(t-1) = L_k(t-1) / L_k(t-2), L_k the epoch's mean unweighted training
  loss of task k; lambda_k = 1 for the first two epochs.
- ``uncertainty``: homoscedastic uncertainty (Kendall, Gal, Cipolla, CVPR 2018, Eq. 7 and 10):
  L = sum_k 0.5 exp(-s_k) L_k + 0.5 s_k with a learnable s_k = log sigma_k^2, initialised at -0.5 as
  in the official MTAN code (lorenmt/mtan, im2im_pred/model_segnet_mtan.py: ``logsigma`` = -0.5).
- ``scalarization``: linear scalarization with fixed weights, the baseline that tuned weightings are
  measured against (Kurin et al. 2022; Xin et al. 2022): lambda_seg = 2(1 - w), lambda_depth = 2w for a
  depth share w in (0, 1). The weights sum to K = 2 like equal weighting's, so w = 0.5 is equal weighting
  and w moves only the balance between the tasks, not the scale of the total loss.

A method's `hyperparameters` (a `Hyperparameter` each: the `TrainConfig` field, its default, its valid and
searched ranges, the scale it is searched on) are the one place that says which values a method takes:
`make_weighting` passes them from the config, `mtan.config` checks them, `mtan.train` makes a flag of
each, and the study searches each one only for trials of its method, on its scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from mtan.errors import ConfigError

# How the study spaces a value over its searched range: uniformly in the value, in its log, or in its
# logit log(v / (1 - v)) (for a share in (0, 1): a log scale of the ratio of the two weights).
Scale = Literal["linear", "log", "logit"]


@dataclass(frozen=True)
class Hyperparameter:
    """A weighting method's hyperparameter: a `TrainConfig` field of the same name."""

    name: str
    label: str
    default: float
    search: tuple[float, float]  # the range the study searches
    scale: Scale = "log"  # how the study spaces it over `search`
    above: float = 0.0  # a valid value is greater than this
    below: float | None = None  # and, when given, less than this

    @property
    def valid(self) -> str:
        """The valid values in words: ``> 0`` or ``in (0, 1)``."""
        if self.below is None:
            return f"> {self.above:g}"
        return f"in ({self.above:g}, {self.below:g})"

    def check(self, value: float) -> str | None:
        """Why `value` is not valid, or None."""
        if value > self.above and (self.below is None or value < self.below):
            return None
        return f"{self.name} must be {self.valid}, got {value}"


class Weighting(nn.Module):
    """Combines per-task losses into one; `end_epoch` receives the epoch's mean unweighted losses."""

    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = ()

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    def weights(self) -> dict[str, float]:
        """The current weight lambda_k of each task."""
        return {task: 1.0 for task in self.tasks}

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted total loss sum_k lambda_k L_k."""
        weights = self.weights()
        return sum(weights[task] * losses[task] for task in self.tasks)

    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        """Record the epoch's mean unweighted training loss per task (used by DWA)."""


class EqualWeighting(Weighting):
    """lambda_k = 1 for every task."""


class DynamicWeightAverage(Weighting):
    """DWA (MTAN Eq. 3); its loss history is part of the state dict, so it survives a checkpoint."""

    # T = 2 in the paper and the seed report; the study searches a log range around it.
    hyperparameters = (Hyperparameter("temperature", "DWA temperature T", 2.0, (0.5, 8.0)),)

    def __init__(self, tasks: Sequence[str], temperature: float = hyperparameters[0].default) -> None:
        super().__init__(tasks)
        self.temperature = temperature
        self.history: list[dict[str, float]] = []

    def weights(self) -> dict[str, float]:
        if len(self.history) < 2:
            return {task: 1.0 for task in self.tasks}
        previous, before = self.history[-1], self.history[-2]
        ratios = [previous[task] / before[task] for task in self.tasks]
        top = max(ratios)  # subtracted for a numerically stable softmax; it cancels out
        exps = [math.exp((r - top) / self.temperature) for r in ratios]
        total = sum(exps)
        return {task: len(self.tasks) * e / total for task, e in zip(self.tasks, exps, strict=True)}

    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        self.history.append({task: float(mean_losses[task]) for task in self.tasks})

    def get_extra_state(self) -> dict[str, Any]:
        return {"history": [dict(epoch) for epoch in self.history]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.history = [dict(epoch) for epoch in state["history"]]


# The official MTAN code's initial log variance s_k of every task (8064cc6 and later).
INITIAL_LOG_VARIANCE = -0.5


class UncertaintyWeighting(Weighting):
    """Kendall et al. 2018: 0.5 exp(-s_k) L_k + 0.5 s_k, s_k = log sigma_k^2 learned with the network."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.log_variance = nn.Parameter(torch.full((len(self.tasks),), INITIAL_LOG_VARIANCE))

    def weights(self) -> dict[str, float]:
        values = (0.5 * torch.exp(-self.log_variance.detach())).tolist()
        return dict(zip(self.tasks, values, strict=True))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[task] for task in self.tasks])
        s = self.log_variance
        return (0.5 * torch.exp(-s) * stacked + 0.5 * s).sum()


class LinearScalarization(Weighting):
    """Fixed weights lambda_seg = 2(1 - w), lambda_depth = 2w for the depth share w.

    Defined for the pipeline's two tasks only: with K tasks a linear scalarization has K - 1 free weights
    on the simplex, which one share cannot express, so any other task set is a `ConfigError`.
    """

    # Searched on the logit scale: uniform in log(lambda_depth / lambda_seg), so each factor of the ratio
    # of the two weights, either way round, gets the same share of trials (a log scale of w would crowd
    # the trials at small w). The range reaches a ratio of 99 either way: on CityScapes the depth L1 loss
    # is tens of times smaller than the segmentation cross-entropy.
    hyperparameters = (
        Hyperparameter("depth_share", "depth share w", 0.5, (0.01, 0.99), scale="logit", below=1.0),
    )
    WEIGHED_TASKS = ("segmentation", "depth")

    def __init__(self, tasks: Sequence[str], depth_share: float = hyperparameters[0].default) -> None:
        super().__init__(tasks)
        if sorted(self.tasks) != sorted(self.WEIGHED_TASKS):
            raise ConfigError(
                f"scalarization weighs the tasks {' and '.join(self.WEIGHED_TASKS)} (lambda_seg = 2(1 - w), "
                f"lambda_depth = 2w); got the tasks {', '.join(self.tasks) or 'none'}"
            )
        self.depth_share = depth_share

    def weights(self) -> dict[str, float]:
        w = self.depth_share
        return {"segmentation": 2 * (1 - w), "depth": 2 * w}


WEIGHTINGS: dict[str, type[Weighting]] = {
    "equal": EqualWeighting,
    "dwa": DynamicWeightAverage,
    "uncertainty": UncertaintyWeighting,
    "scalarization": LinearScalarization,
}


def hyperparameters() -> dict[str, Hyperparameter]:
    """Every registered method's hyperparameters by name."""
    return {h.name: h for method in WEIGHTINGS.values() for h in method.hyperparameters}


def make_weighting(name: str, tasks: Sequence[str], values: Mapping[str, Any] | None = None) -> Weighting:
    """The weighting method registered as `name`, given its hyperparameters from `values` (e.g. the flat
    `TrainConfig`; a missing one takes its default, other keys are ignored)."""
    if name not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
    method = WEIGHTINGS[name]
    values = values or {}
    return method(tasks, **{h.name: values.get(h.name, h.default) for h in method.hyperparameters})
