"""Every use of a private part of Ray or Optuna, each behind one function, with the version it was written
for (`WRITTEN_FOR`).

The study needs a few things no public API gives: ASHA's rungs (to start a resumed study's ASHA from the
trials of earlier driver runs), an Optuna trial handed out again by its number (the journal's RUNNING
trials), a local Ray on loopback only, without its token notice and its callback telemetry, the CPUs a
local Ray would have, a raylet's process (the benchmarks' memory per node) and Ray's cluster-config
checks and token path (the cluster file's tests). The first use of a package's touchpoint says in one
line when the installed version is not the one they were written for; tests/test_compat.py and
tests/test_connect.py fail when an upgrade changes one of them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

WRITTEN_FOR: Mapping[str, str] = {"ray": "2.60.0", "optuna": "5.1.0"}
_log = logging.getLogger(__name__)


@functools.cache
def check_version(package: str) -> str:
    """The installed version of `package`; logs one line the first time when it is not the version its
    touchpoints here were written for."""
    found = importlib.metadata.version(package)
    if found != WRITTEN_FOR[package]:
        _log.warning(
            "study.compat: %s %s found, written for %s; its private parts used here may have changed "
            "(tests/test_compat.py checks them)",
            package,
            found,
            WRITTEN_FOR[package],
        )
    return found


def _private(module: str, name: str, touchpoint: str) -> tuple[Any, Any]:
    """The module and the current value of Ray's private `module`.`name` (the version checked first);
    `RuntimeError` naming the touchpoint when this Ray lacks it."""
    check_version("ray")
    owner = importlib.import_module(module)
    if not hasattr(owner, name):
        raise RuntimeError(f"study.compat ({touchpoint}): this Ray has no {module}.{name}")
    return owner, getattr(owner, name)


@contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


# ---------------------------------------------------------------- Ray Tune's ASHA


def asha_sign(scheduler: Any) -> float | None:
    """+1 or -1: what an `ASHAScheduler` multiplies the metric by so that higher is better (None before
    Tune has set its metric and mode). Ray: ``AsyncHyperBandScheduler._metric_op``."""
    check_version("ray")
    return scheduler._metric_op


def asha_rungs(scheduler: Any) -> list[tuple[float, MutableMapping[str, float]]]:
    """Every rung of every bracket of an `ASHAScheduler`: (its milestone, the signed values it recorded
    by Tune trial id; ASHA reads and adds to this dict). Ray: ``_brackets``, ``_Bracket._rungs``."""
    check_version("ray")
    return [
        (milestone, recorded) for bracket in scheduler._brackets for milestone, recorded in bracket._rungs
    ]


# ---------------------------------------------------------------- Optuna


def reopen_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.Trial:
    """The live `optuna.Trial` of a trial the study's storage holds as RUNNING (a driver run that ended
    before the trial did), to suggest, report and tell through again. Optuna: ``FrozenTrial._trial_id``."""
    check_version("optuna")
    from optuna.trial import Trial

    return Trial(study, frozen._trial_id)


# ---------------------------------------------------------------- Ray's processes and cluster launcher


def raylet_pid(node: Any) -> int:
    """The process id of the raylet of a node of ``ray.cluster_utils.Cluster`` (which holds the node's
    object store). Ray: ``ray._private.node.Node.all_processes``."""
    check_version("ray")
    from ray._private.ray_constants import PROCESS_TYPE_RAYLET

    return int(node.all_processes[PROCESS_TYPE_RAYLET][0].process.pid)


def check_cluster_config(config: dict[str, Any]) -> None:
    """Ray's cluster launcher's own checks of a cluster file (its schema, then its defaults filled in);
    raises ``jsonschema.ValidationError`` or ``ValueError``. Ray: ``ray.autoscaler._private.util``."""
    check_version("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def auth_mode_env_var() -> str:
    """The environment variable that switches Ray's token authentication on (``token``)."""
    check_version("ray")
    from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR

    return str(AUTH_MODE_ENV_VAR)


def default_auth_token_path() -> Path:
    """Where Ray reads its authentication token from by default (``ray get-auth-token --generate``)."""
    check_version("ray")
    from ray._private.authentication.authentication_token_setup import _get_default_token_path

    return Path(_get_default_token_path())


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
