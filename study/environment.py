"""What a study ran on: the versions of its software and the hardware Ray sees (study.json)."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import optuna
import ray
import torch

import mtan


def versions() -> dict[str, str | None]:
    """Python's, torch's, Ray's, Optuna's and this package's versions."""
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
    """The CPUs and GPUs of the connected Ray cluster, and the GPUs' name."""
    resources = ray.cluster_resources()
    accelerators = sorted(k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:"))
    gpu_name = accelerators[0] if accelerators else None
    if gpu_name is None and torch.cuda.is_available():
        gpu_name = torch.cuda.get_device_name(0)
    return {"cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0), "gpu_name": gpu_name}
