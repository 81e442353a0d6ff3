"""Starting or joining Ray for the study's commands."""

from __future__ import annotations

import logging
import os

import ray


def ray_address(flag: str | None) -> str | None:
    """Ray's address: the flag; else $RAY_ADDRESS (set inside ``ray job submit``); else ``local``, a new
    Ray instance of this process, even when a cluster runs on this machine (join it with --address)."""
    if flag:
        return flag
    return None if os.environ.get("RAY_ADDRESS") else "local"


def connect(flag: str | None) -> bool:
    """Start or join Ray unless this process is connected already; True when this call connected it
    (the caller then shuts it down)."""
    if ray.is_initialized():
        return False
    ray.init(address=ray_address(flag), include_dashboard=False, logging_level=logging.WARNING)
    return True
