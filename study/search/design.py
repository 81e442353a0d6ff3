"""The study's design: which points a new study enqueues, and with ``--per-weighting`` which weighting
method each trial gets (docs/study.md, "The same budget for every weighting").

With ``--num-samples`` the sampler chooses each trial's weighting like any other value, after the
published configurations. With ``--per-weighting N`` every method of the search space gets exactly N
trials (Kurin et al. 2022, arXiv 2201.04122; Xin et al. 2022, arXiv 2209.11379: a weighting is compared
with equal weighting only when each is tuned with the same budget). The published configurations are
their methods' first trials and count in their budgets; every further trial is enqueued with only its
weighting fixed, going to the method with the fewest trials so far (ties to the earlier method of the
space), so the methods take turns from the start. All of them are enqueued when the study is created:
the journal holds the design before any trial runs, and a resume asks the trials in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from study.space import WEIGHTING


def weighting_order(first: Sequence[str], weightings: Sequence[str], per_weighting: int) -> list[str]:
    """The weighting of every trial of a per-weighting study, in trial order: `first` (the published
    configurations' methods, all within their budgets), then the method with the fewest trials so far,
    ties going to the earlier one of `weightings`."""
    order = list(first)
    while len(order) < per_weighting * len(weightings):
        order.append(min(weightings, key=lambda w: (order.count(w), weightings.index(w))))
    return order


def first_points(
    published: Sequence[Mapping[str, Any]],
    *,
    num_samples: int,
    per_weighting: int | None,
    weightings: Sequence[str],
) -> list[dict[str, Any]]:
    """The points a new study enqueues, as its first trials in this order: the published configurations
    (those that fit: the first `num_samples`, or those within their method's `per_weighting` budget),
    and with `per_weighting` one point per further trial with only its weighting."""
    if per_weighting is None:
        return [dict(p) for p in published[:num_samples]]
    kept: list[dict[str, Any]] = []
    for point in published:
        if (
            point[WEIGHTING] in weightings
            and sum(p[WEIGHTING] == point[WEIGHTING] for p in kept) < per_weighting
        ):
            kept.append(dict(point))
    order = weighting_order([p[WEIGHTING] for p in kept], weightings, per_weighting)
    return kept + [{WEIGHTING: w} for w in order[len(kept) :]]
