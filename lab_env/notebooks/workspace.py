"""A per-kernel folder for the files a lab writes (agent app modules)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ..apps import unique_name
from ..paths import state_dir


@cache
def workspace() -> Path:
    path = state_dir() / "workspaces" / unique_name("run")
    path.mkdir(parents=True, exist_ok=True)
    return path
