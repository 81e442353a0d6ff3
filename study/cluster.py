"""The Ray cluster the study's commands run on: starting or joining it, what it can hold, what it is.

A trial is one Tune actor (a seed of ``study.reproduce`` one Ray task), so its CPUs and GPUs must all be
on one node. On a cluster that cannot grow, a request no node can meet waits for ever (Tune only warns
after a minute, comparing with the whole cluster's total, not with a node's); `check_trial_fits`
refuses it at once with one line instead. A cluster can grow when the driver runs on the head of a
cluster started by ``ray up`` with an autoscaler, recognised by the ``~/ray_bootstrap_config.yaml`` that
the launcher writes there (Ray Tune tells an autoscaling cluster the same way); any other Ray instance,
a local one included, is fixed.

A study that starts its own Ray (`connect` without an address) keeps every Ray process on 127.0.0.1
(`study.compat.local_ray_on_loopback`) and gives it this machine's CPUs and GPUs (`local_capacity`), known
before Ray starts, so a trial that cannot fit is refused before anything starts. A study that joins a
cluster keeps the cluster's settings.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import platform
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import optuna
import ray
import torch

import mtan
from mtan.errors import UserError
from study import compat

AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml")  # on the head of a `ray up` cluster
SLACK = 1e-9  # fractional GPUs add up in floating point


def ray_address(flag: str | None) -> str | None:
    """Ray's address: the flag; else $RAY_ADDRESS (set inside ``ray job submit``); else ``local``, a new
    Ray instance of this process, even when a cluster runs on this machine (join it with --address)."""
    if flag:
        return flag
    return None if os.environ.get("RAY_ADDRESS") else "local"


def starts_local_ray(flag: str | None) -> bool:
    """Whether `connect(flag)` would start a new Ray instance here (rather than join one, or find this
    process connected already)."""
    return not ray.is_initialized() and ray_address(flag) == "local"


def local_capacity() -> dict[str, float]:
    """The CPUs and GPUs of the Ray instance `connect` starts on this machine: the CPUs Ray itself
    would count (a container's quota included) and the GPUs torch sees (CUDA_VISIBLE_DEVICES applied)."""
    return {"CPU": compat.local_cpus(), "GPU": float(torch.cuda.device_count())}


def connect(flag: str | None) -> bool:
    """Start or join Ray unless this process is connected already; True when this call connected it
    (the caller then shuts it down). A Ray started here listens on 127.0.0.1 only, with `local_capacity`,
    token authentication on (Ray's default for a local instance) and its notice of that left out."""
    if ray.is_initialized():
        return False
    address = ray_address(flag)
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address != "local":
        ray.init(address=address, **options)
        return True
    capacity = local_capacity()
    with compat.local_ray_on_loopback(), compat.no_token_notice():
        ray.init(address="local", num_cpus=capacity["CPU"], num_gpus=capacity["GPU"], **options)
    return True


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """From now on SIGTERM is handled as Ctrl-C: by the SIGINT handler in place (Tune's while trials run,
    so a study stops cleanly), else as a KeyboardInterrupt. Replaces Ray's own handler, which exits with a
    crash dump."""
    signal.signal(signal.SIGTERM, _as_ctrl_c)


def connect_interruptible(flag: str | None) -> bool:
    """`connect`, then SIGTERM as Ctrl-C again. While Ray starts, its own handler is in place: it exits
    with SystemExit(SIGTERM), taken here as an interrupt (in a short window its C++ core prints a crash
    report and aborts instead; a command writes nothing before Ray has started)."""
    try:
        owns_ray = connect(flag)
    except SystemExit as error:
        if error.code == signal.SIGTERM:
            raise KeyboardInterrupt from None
        raise
    interrupt_on_sigterm()
    return owns_ray


def shutdown_ray() -> None:
    """Stop the Ray instance this process started, once its files are written and its last line printed,
    with Ctrl-C and SIGTERM ignored meanwhile (they would only cut Ray's clean-up short). Ray's core
    restores SIGTERM's default action for part of `ray.shutdown`, so a SIGTERM then still ends the
    process, with nothing left to write or say."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ray.shutdown()


def cluster_can_grow() -> bool:
    """Whether an autoscaler may add nodes to the cluster this driver runs on."""
    return AUTOSCALER_CONFIG.expanduser().exists()


def _alive_node_resources() -> list[dict[str, Any]]:
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def check_trial_fits(
    cpus: float,
    gpus: float,
    flags: tuple[str, str] = ("--cpus-per-trial", "--gpus-per-trial"),
    local: dict[str, float] | None = None,
) -> None:
    """Raise `UserError` naming the flag when no node of a fixed cluster has `cpus` CPUs and `gpus` GPUs;
    with `local` (`local_capacity`), when the Ray instance about to start on this machine would not."""
    if local is None and cluster_can_grow():
        return
    nodes = [local] if local is not None else _alive_node_resources()
    if any(r.get("CPU", 0.0) + SLACK >= cpus and r.get("GPU", 0.0) + SLACK >= gpus for r in nodes):
        return
    most = {kind: max((r.get(kind, 0.0) for r in nodes), default=0.0) for kind in ("CPU", "GPU")}
    for flag, kind, asked in ((flags[0], "CPU", cpus), (flags[1], "GPU", gpus)):
        if most[kind] + SLACK < asked:
            units = kind if asked == 1 else f"{kind}s"
            if local is not None:
                has = f"{most[kind]:g} {kind if most[kind] == 1 else f'{kind}s'}"
                raise UserError(
                    f"{flag} {asked:g}: this machine has {has} for the Ray instance the command starts "
                    "(join a larger cluster with --address)"
                )
            raise UserError(
                f"{flag} {asked:g}: no node of this Ray cluster has {asked:g} {units} (the largest has "
                f"{most[kind]:g}), and it has no autoscaler to add one"
            )
    raise UserError(
        f"{flags[0]} {cpus:g} with {flags[1]} {gpus:g}: no node of this Ray cluster has both, and it has "
        "no autoscaler to add one"
    )


def trial_slots(cpus: float, gpus: float) -> int | None:
    """How many trials of `cpus` CPUs and `gpus` GPUs the cluster holds now (None when none fits yet,
    e.g. GPU nodes scale from 0)."""
    resources = ray.cluster_resources()
    if gpus > 0:
        slots = math.floor(resources.get("GPU", 0.0) / gpus + SLACK)
    else:
        slots = math.floor(resources.get("CPU", 0.0) / cpus + SLACK)
    return slots if slots >= 1 else None


def default_gpus_per_trial(cluster_gpus: float) -> float:
    """One GPU per trial when the cluster has a GPU, else none."""
    return 1.0 if cluster_gpus > 0 else 0.0


def versions() -> dict[str, str | None]:
    """Python's, torch's, Ray's, Optuna's and this package's versions (study.json)."""
    try:
        mtan_version: str | None = importlib.metadata.version("mtan-study")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        mtan_version = mtan.__version__
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "optuna": optuna.__version__,
        "mtan": mtan_version,
    }


def hardware() -> dict[str, Any]:
    """The CPUs and GPUs of the connected Ray cluster, and the GPUs' name (study.json)."""
    resources = ray.cluster_resources()
    accelerators = sorted(k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:"))
    gpu_name = accelerators[0] if accelerators else None
    if gpu_name is None and torch.cuda.is_available():
        gpu_name = torch.cuda.get_device_name(0)
    return {"cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0), "gpu_name": gpu_name}
