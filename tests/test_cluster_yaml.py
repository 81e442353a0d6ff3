"""ray_cluster.yaml: valid for Ray's own cluster launcher, and the cluster the study needs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_the_launcher_accepts_it(config):
    validate_config(prepare_config(config))  # Ray's schema (ray-schema.json) and its own checks


def test_the_schema_check_is_real(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = "none"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_a_cpu_head_without_trials_and_gpu_workers_from_zero(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and "GPU" not in head["resources"]
    assert "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    gpu = [t for name, t in types.items() if name != config["head_node_type"] and t["resources"].get("GPU")]
    assert len(gpu) == 1 and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1


def test_the_image_runs_the_pinned_ray_and_installs_this_project(config):
    tag = config["docker"]["image"].split(":", 1)[1]
    assert re.match(rf"{re.escape(ray.__version__)}-py\d+-gpu$", tag), tag
    pinned = re.search(r"ray\[tune\]==([\d.]+)", (CLUSTER_YAML.parent / "pyproject.toml").read_text())
    assert pinned and pinned.group(1) == ray.__version__
    mounted = next(iter(config["file_mounts"]))
    assert any("pip install" in c and mounted in c for c in config["setup_commands"])
