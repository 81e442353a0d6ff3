"""Whether one trial's resource request can ever be met by the Ray cluster the driver is connected to.

A trial is one Tune actor, so its CPUs and GPUs must all be on one node. On a cluster that cannot grow,
a request no node can meet waits for ever (Tune only warns after a minute, comparing with the whole
cluster's total, not with a node's); `check_trial_fits` refuses it at once with one line instead.
A cluster can grow when the driver runs on the head of a cluster started by ``ray up`` with an
autoscaler, recognised by the ``~/ray_bootstrap_config.yaml`` that the launcher writes there (Ray Tune
tells an autoscaling cluster the same way); any other Ray instance, a local one included, is fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from mtan.errors import UserError

AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml")  # on the head of a `ray up` cluster
_SLACK = 1e-9  # fractional GPUs add up in floating point


def cluster_can_grow() -> bool:
    """Whether an autoscaler may add nodes to the cluster this driver runs on."""
    return AUTOSCALER_CONFIG.expanduser().exists()


def _alive_node_resources() -> list[dict[str, Any]]:
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def check_trial_fits(
    cpus: float, gpus: float, flags: tuple[str, str] = ("--cpus-per-trial", "--gpus-per-trial")
) -> None:
    """Raise `UserError` naming the flag when no node of a fixed cluster has `cpus` CPUs and `gpus` GPUs."""
    if cluster_can_grow():
        return
    nodes = _alive_node_resources()
    if any(r.get("CPU", 0.0) + _SLACK >= cpus and r.get("GPU", 0.0) + _SLACK >= gpus for r in nodes):
        return
    most = {kind: max((r.get(kind, 0.0) for r in nodes), default=0.0) for kind in ("CPU", "GPU")}
    for flag, kind, asked in ((flags[0], "CPU", cpus), (flags[1], "GPU", gpus)):
        if most[kind] + _SLACK < asked:
            raise UserError(
                f"{flag} {asked:g}: no node of this Ray cluster has {asked:g} {kind}s (the largest has "
                f"{most[kind]:g}), and it has no autoscaler to add one"
            )
    raise UserError(
        f"{flags[0]} {cpus:g} with {flags[1]} {gpus:g}: no node of this Ray cluster has both, and it has "
        "no autoscaler to add one"
    )
