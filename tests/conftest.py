"""Shared fixtures: ONE Ray instance for the whole test session, and a small finished study.

The Ray instance is a local multi-node cluster (`ray.cluster_utils.Cluster`): a head node with no CPUs,
like the cloud cluster's head, and two 1-CPU worker nodes, all on loopback. Every Ray test uses it (the
test process is connected to it; study commands in subprocesses join it with ``--address``), and the
multi-node test kills one of its workers and adds a fresh one afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_data import write_tiny_set

# `--set` values that make a study's trials train in a fraction of a second on the tiny set.
TINY_SET = ("image_height=32", "image_width=64", "width=0.0625", "batch_size=4", "max_train_images=8")
WORKER_CPUS = 1
WORKERS = 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (the suite runs with ``-n 2 --dist loadgroup``) every test that uses the Ray
    cluster, itself or through another fixture, runs in one worker, so the session still has ONE Ray
    instance; the other tests (reports, figures, the network, the metrics) spread over the workers."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's Ray cluster; the test process is connected to it."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(WORKERS):
        cluster.add_node(num_cpus=WORKER_CPUS)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A tiny data set in the MTAN layout (8 training and 4 validation scenes)."""
    return write_tiny_set(tmp_path_factory.mktemp("tiny-data"))


def tiny_study_args(root: Path, storage: Path, name: str, *extra: str) -> list[str]:
    """`python -m study.run` arguments of a study on the tiny set that takes seconds per trial."""
    args = ["--data-root", str(root), "--storage-path", str(storage), "--name", name]
    for item in TINY_SET:
        args += ["--set", item]
    return [*args, *extra]


@pytest.fixture(scope="session")
def finished_study(ray_cluster, tiny_root, tmp_path_factory) -> Path:
    """A finished 5-trial study on the tiny set (4 epochs, ASHA grace 1, factor 2); its folder."""
    from study.run import main

    storage = tmp_path_factory.mktemp("studies")
    args = tiny_study_args(tiny_root, storage, "small", "--num-samples", "5", "--max-epochs", "4")
    assert main([*args, "--grace-period", "1", "--reduction-factor", "2"]) == 0
    return storage / "small"
