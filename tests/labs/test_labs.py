"""labs/ is generated from solutions/, and every check in it can fail.

The solutions themselves run under nbval (see pyproject.toml). Each unsolved
lab runs once against the live stack, in its grading test, which asserts
that every check fails with its own message rather than crash: lab 01 in
tests/grading/test_grading.py, labs 02 on in tests/grading/test_grading_labs.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from lab_env.grading.generate import SOLUTIONS_DIR, build_labs

SOLUTIONS = sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_labs_are_in_sync_with_solutions():
    stale = build_labs(check=True)
    assert stale == [], f"run `lab-env build-labs`: stale {[p.name for p in stale]}"


def _check_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["lab_env"]["check"]: c for c in nb.cells if "check" in c.get("metadata", {}).get("lab_env", {})}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_every_check_has_points_and_an_expected_failure(solution: Path):
    checks = _check_cells(nbformat.read(solution, as_version=4))
    assert checks, f"{solution.name} has no check cells"
    for name, cell in checks.items():
        meta = cell.metadata["lab_env"]
        assert meta["points"] > 0 and meta["expect_unsolved"], name
        assert "nbval-check-output" in cell.metadata.get("tags", []), f"{name}: nbval must compare its output"
