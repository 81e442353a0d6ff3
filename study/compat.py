"""Every use of a private part of Ray or Optuna, each behind one function, with the version it was written
for (`WRITTEN_FOR`).

The study needs a few things no public API gives: ASHA's rungs (to start a resumed study's ASHA from the
trials of earlier driver runs), an Optuna trial handed out again by its number (the journal's RUNNING
trials), a raylet's process (the benchmarks' memory per node) and Ray's cluster-config checks and token
path (the cluster file's tests). The first use of a package's touchpoint says in one line when the
installed version is not the one they were written for; tests/test_compat.py fails when an upgrade
changes one of them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Mapping, MutableMapping
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
