"""Every place the study touches a private part of Ray, one section each, checked against the Ray version
each was read in (pyproject pins ``ray[tune]==2.60.0``; a Ray upgrade fails here until each section is
read again in the new Ray's source).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ray

VERIFIED_RAY = "2.60.0"  # the Ray whose source every section below was read in


def _private(module: str, name: str, touchpoint: str) -> tuple[Any, Any]:
    """The module and the current value of Ray's private `module`.`name`; `RuntimeError` naming the
    touchpoint when this Ray is not the verified one or lacks it."""
    if ray.__version__ != VERIFIED_RAY:
        raise RuntimeError(
            f"study.compat ({touchpoint}) was checked against Ray {VERIFIED_RAY}, this is Ray "
            f"{ray.__version__}: read that part of the new Ray's source and update study/compat.py"
        )
    owner = importlib.import_module(module)
    if not hasattr(owner, name):
        raise RuntimeError(f"study.compat ({touchpoint}): Ray {ray.__version__} has no {module}.{name}")
    return owner, getattr(owner, name)


@contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


# ---------------------------------------------------------------- a local Ray on loopback
# Ray's processes (GCS, raylet, workers, agents) listen on 127.0.0.1 only when the node's address is
# exactly 127.0.0.1 (else on every interface: src/ray/rpc/grpc_server.cc, GetAllInterfacesIP). ray.init
# takes the node address from `ray._private.services.get_node_ip_address`, which returns the loopback
# address only while `ray._private.ray_constants.ENABLE_RAY_CLUSTER` is False (Ray's default on Windows and
# macOS; `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` sets it, but only when read at `import ray`); and it turns
# even an explicit ``_node_ip_address="127.0.0.1"`` into the network address while that constant is True
# (`resolve_ip_for_localhost`). Read at call time; needed only while ray.init starts the node: the
# processes it starts are handed the address.


@contextmanager
def local_ray_on_loopback() -> Iterator[None]:
    """While a ``ray.init`` inside starts a new local Ray, its node address is 127.0.0.1."""
    owner, _ = _private("ray._private.ray_constants", "ENABLE_RAY_CLUSTER", "local Ray on loopback")
    with _replaced(owner, "ENABLE_RAY_CLUSTER", False):
        yield


# ---------------------------------------------------------------- the token notice of a local Ray
# A new local Ray (ray.init without an address) with RAY_AUTH_MODE unset turns token authentication on
# (`enable_token_auth_by_default`: RAY_AUTH_MODE=token in the driver's environment, inherited by every Ray
# process; a random token written to ~/.ray/auth_token when there is none) and logs a WARNING saying so
# through the logger of its module. The study keeps the token and drops that one line.
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"  # its module's name
TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"


class _DropTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTICE)


@contextmanager
def no_token_notice() -> Iterator[None]:
    """Ray's notice that a new local instance uses token authentication is not logged inside."""
    _private(TOKEN_NOTICE_LOGGER, "_warn_token_auth_enabled", "token notice")
    notice_logger = logging.getLogger(TOKEN_NOTICE_LOGGER)
    dropped = _DropTokenNotice()
    notice_logger.addFilter(dropped)
    try:
        yield
    finally:
        notice_logger.removeFilter(dropped)


# ---------------------------------------------------------------- the CPUs of a local Ray
# ray.init without num_cpus gives the node `ray._private.utils.get_num_cpus()`: the machine's CPUs, or a
# container's cgroup quota (truncated to an integer).


def local_cpus() -> float:
    """The CPUs a new local Ray would give its node."""
    _, get_num_cpus = _private("ray._private.utils", "get_num_cpus", "CPUs of a local Ray")
    return float(get_num_cpus(override_docker_cpu_warning=True))


# ---------------------------------------------------------------- Tune's callback telemetry
# Tuner.fit records which callbacks it was given (`ray.tune.tune.run` calls
# `ray.air._internal.usage.tag_callbacks`, looked up at call time), and to name the built-in ones it
# imports Ray's MLflow, W&B, Comet and Aim integrations, so the `mlflow` package (2 to 3 s) when it is
# installed. Ray records usage only when its usage stats are on, which ray.init turns off for a local
# instance of a released Ray.


@contextmanager
def no_callback_telemetry() -> Iterator[None]:
    """Tuner.fit inside records no callback telemetry (and imports no logger integration for it)."""
    owner, _ = _private("ray.air._internal.usage", "tag_callbacks", "callback telemetry")
    skip: Callable[..., bool] = lambda callbacks: False  # noqa: E731 - its documented "nothing recorded"
    with _replaced(owner, "tag_callbacks", skip):
        yield
