"""ray_cluster.yaml: valid for Ray's own cluster launcher, and the cluster the study needs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from study.compat import auth_mode_env_var, check_cluster_config, default_auth_token_path

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"
CONTAINER_HOME = "/home/ray"  # the home of the rayproject/ray images' user


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_the_launcher_accepts_it(config):
    check_cluster_config(config)  # Ray's schema (ray-schema.json) and its own checks


def test_the_schema_check_is_real(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = "none"
    with pytest.raises(jsonschema.ValidationError):
        check_cluster_config(broken)


def test_a_cpu_head_without_trials_and_gpu_workers_from_zero(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and "GPU" not in head["resources"]
    assert "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    gpu = [t for name, t in types.items() if name != config["head_node_type"] and t["resources"].get("GPU")]
    assert len(gpu) == 1 and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1


def test_the_image_runs_the_pinned_ray_and_installs_this_project(config):
    tag = config["docker"]["image"].split(":", 1)[1]
    assert tag.startswith(f"{ray.__version__}-py"), tag
    pinned = re.search(r"ray\[tune\]==([\d.]+)", (CLUSTER_YAML.parent / "pyproject.toml").read_text())
    assert pinned and pinned.group(1) == ray.__version__
    mounted = next(iter(config["file_mounts"]))
    assert any("pip install" in c and mounted in c for c in config["setup_commands"])


def _start_commands(config: dict) -> dict[str, str]:
    return {kind: " ".join(config[f"{kind}_start_ray_commands"]) for kind in ("head", "worker")}


def test_token_authentication_on_for_head_and_workers(config):
    docker = config["docker"]
    # one container option for every node (no head- or worker-only options that could differ)
    assert "head_run_options" not in docker and "worker_run_options" not in docker
    mode = auth_mode_env_var()
    assert f"-e {mode}=token" in docker["run_options"]
    for kind, commands in _start_commands(config).items():
        assert mode not in commands, kind  # nothing overrides the container's mode
    # the token: the file `ray get-auth-token --generate` writes on the user's machine, copied to Ray's
    # default token path in every container; never a value in this file
    relative = default_auth_token_path().relative_to(Path.home())
    assert config["file_mounts"][f"{CONTAINER_HOME}/{relative}"] == f"~/{relative}"
    assert "RAY_AUTH_TOKEN" not in CLUSTER_YAML.read_text()


def test_dashboard_and_job_api_only_on_the_heads_localhost(config):
    head = _start_commands(config)["head"]
    assert re.findall(r"--dashboard-host[= ](\S+)", head) == ["127.0.0.1"]
    assert "0.0.0.0" not in CLUSTER_YAML.read_text()


def test_the_cuda_of_the_image_is_explicit_and_torch_is_pinned_with_it(config):
    image = config["docker"]["image"]
    assert re.search(r"-cu\d{3}$", image), image  # not the `-gpu` alias, whose CUDA moves
    assert all(
        node.get("docker", {}).get("image", image) == image
        for node in config["available_node_types"].values()
    )
    assert any(re.search(r"torch==\d+\.\d+\.\d+", c) for c in config["setup_commands"])
