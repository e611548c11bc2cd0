"""A per-kernel folder for the files a lab writes (agent app modules)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from ..apps import unique_name
from ..paths import state_dir


@cache
def workspace() -> Path:
    # The grader names the folder (LAB_ENV_WORKSPACE), so its own process
    # reads the files the graded kernel wrote.
    chosen = os.environ.get("LAB_ENV_WORKSPACE")
    path = Path(chosen) if chosen else state_dir() / "workspaces" / unique_name("run")
    path.mkdir(parents=True, exist_ok=True)
    return path
