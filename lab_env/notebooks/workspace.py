"""A per-kernel folder for the files a lab writes (agent app modules), the
app modules a solution notebook saves (for benches and tests), and which
running programs are older than the file they run."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from lab_env.core.names import run_token
from lab_env.core.paths import state_dir


@cache
def workspace() -> Path:
    # The grader names the folder (LAB_ENV_WORKSPACE), so its own process
    # reads the files the graded kernel wrote.
    chosen = os.environ.get("LAB_ENV_WORKSPACE")
    path = Path(chosen) if chosen else folder_of_run(run_token())
    path.mkdir(parents=True, exist_ok=True)
    return path


def folder_of_run(token: str) -> Path:
    """The workspace of the run ``token`` (a kernel's, unless the grader chose one)."""
    return state_dir() / "workspaces" / f"run-{token}"


def app_file_source(notebook: Path, name: str) -> str:
    """The body of the ``%%app_file NAME`` cell of ``notebook`` (a solution):
    benches and tests run the module the lab teaches, never a copy of it."""
    import nbformat

    for cell in nbformat.read(notebook, as_version=4).cells:
        first, _, body = cell.source.partition("\n")
        if cell.cell_type == "code" and first.strip() == f"%%app_file {name}":
            return body
    raise LookupError(f"{notebook.name} has no %%app_file {name} cell")


# A file saved this long after its process started is a newer version (process start times are in ticks).
_SAVED_AFTER_S = 1.0
_MODULE_TARGET = re.compile(r"(?P<module>[A-Za-z_][\w.]*):[A-Za-z_]\w*")  # uvicorn's module:attribute


def outdated_programs(folder: Path, names: list[str] | None = None) -> list[tuple[str, str]]:
    """(app or worker name, file) for each running program started from ``folder`` (of ``names``, if
    given) whose file was saved again after it started, and no longer holds an exercise stub: it
    still runs the old code. A learner who edits an ``%%app_file`` cell and reruns only that cell
    is in this state."""
    from lab_env.core import registry

    found: list[tuple[str, str]] = []
    for name in registry.names() if names is None else names:
        record = registry.load(name)
        if not record or not record.extra.get("cwd") or Path(record.extra["cwd"]) != folder:
            continue
        pid = record.extra.get("app_pid") or (record.pids[0] if record.extra.get("worker") and record.pids else None)
        started = record.start_times.get(pid) if pid else None
        if started is None or not registry.live_pids(record):
            continue
        argv = record.extra.get("command") or record.extra.get("argv") or []
        hosted = (record.extra.get("env") or {}).get("LAB_WORKFLOW_MODULE")  # labs 04, 06, 07: a host loads it
        for file in _program_files(argv) + ([hosted.replace(".", "/") + ".py"] if hosted else []):
            path = folder / file
            if path.exists() and path.stat().st_mtime > started + _SAVED_AFTER_S:
                if "raise NotImplementedError" not in path.read_text():
                    found.append((name, file))
    return found


def _program_files(argv: list[str]) -> list[str]:
    """The files of ``folder`` a command runs: ``module:app`` for uvicorn, ``script.py`` for Python."""
    files = []
    for before, arg in zip(["", *argv], argv, strict=False):
        if m := _MODULE_TARGET.fullmatch(arg):
            files.append(m["module"].replace(".", "/") + ".py")
        elif before == "-m" and arg != "uvicorn":  # python -m module
            files.append(arg.replace(".", "/") + ".py")
        elif arg.endswith(".py") and "/" not in arg:
            files.append(arg)
    return files
