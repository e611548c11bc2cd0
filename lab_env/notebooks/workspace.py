"""A per-kernel folder for the files a lab writes (agent app modules), and
the app modules a solution notebook saves, for benches and tests."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from lab_env.core.names import unique_name
from lab_env.core.paths import state_dir


@cache
def workspace() -> Path:
    # The grader names the folder (LAB_ENV_WORKSPACE), so its own process
    # reads the files the graded kernel wrote.
    chosen = os.environ.get("LAB_ENV_WORKSPACE")
    path = Path(chosen) if chosen else state_dir() / "workspaces" / unique_name("run")
    path.mkdir(parents=True, exist_ok=True)
    return path


def app_file_source(notebook: Path, name: str) -> str:
    """The body of the ``%%app_file NAME`` cell of ``notebook`` (a solution):
    benches and tests run the module the lab teaches, never a copy of it."""
    import nbformat

    for cell in nbformat.read(notebook, as_version=4).cells:
        first, _, body = cell.source.partition("\n")
        if cell.cell_type == "code" and first.strip() == f"%%app_file {name}":
            return body
    raise LookupError(f"{notebook.name} has no %%app_file {name} cell")
