"""Wrong answers for the check tests: a solution's app module with one mistake
put in (tests/labs/lab04_workflows/test_lab04_checks.py, test_lab06_checks.py; the ``start``
fixture in tests/conftest.py runs it as the lab does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab_env.labs.checks import verdict
from lab_env.notebooks.workspace import app_file_source


def mutated(solution: Path, name: str, *edits: tuple[str, str]) -> str:
    """The solution's %%app_file ``name`` with each (old, new) replaced once found."""
    source = app_file_source(solution, name)
    for old, new in edits:
        assert old in source, f"{name} no longer contains {old!r}: update this test"
        source = source.replace(old, new)
    return source


def written(folder: Path, solution: Path, name: str, *edits: tuple[str, str]) -> Path:
    """The solution's %%app_file ``name``, with ``edits`` made, saved into ``folder`` as the lab saves it;
    its path (the tests run the module the notebook teaches, never a copy of it)."""
    path = folder / name
    path.write_text(mutated(solution, name, *edits))
    return path


def rejected(check: Callable[..., None], *args: object, because: str) -> None:
    """``check`` fails on a wrong answer and its message says ``because``."""
    result = verdict(check, *args)
    assert not result.passed and because in result.message, result.message


def start_wrong(start: Callable[[str, str], Any], solution: Path, module: str, *edits: tuple[str, str]) -> Any:
    """The solution's %%app_file ``<module>.py`` with ``edits`` made, started by the ``start`` fixture."""
    return start(module, mutated(solution, f"{module}.py", *edits))
