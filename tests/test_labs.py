"""labs/ is generated from solutions/, and every check in it can fail.

The solutions themselves run under nbval (see pyproject.toml); here the
unsolved student notebooks run against the live stack, as a learner would
run them before writing any code, and every check cell must fail with its
own message rather than crash. Labs 02 on are run unsolved by their grading
test (tests/test_grading_labs.py), which asserts the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from test_grading_labs import LABS

from lab_env.notebooks.execute import execute
from lab_env.notebooks.generate import LABS_DIR, SOLUTIONS_DIR, build_labs

SOLUTIONS = sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))
# test_grading_labs grades these labs unsolved, each check with its message: run once, not twice.
GRADED_UNSOLVED = set(LABS)


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


@pytest.mark.stack
@pytest.mark.parametrize("solution", [s for s in SOLUTIONS if s.name[:2] not in GRADED_UNSOLVED], ids=lambda p: p.stem)
def test_checks_fail_with_their_message_on_the_unsolved_lab(solution: Path):
    expected = {name: cell.metadata["lab_env"]["expect_unsolved"]
                for name, cell in _check_cells(nbformat.read(solution, as_version=4)).items()
                if "instructor" not in cell.metadata.get("tags", [])}
    lab = execute(LABS_DIR / solution.name, allow_errors=True, timeout=300)
    got = {}
    for name, cell in _check_cells(lab).items():
        errors = [o for o in cell.outputs if o.output_type == "error"]
        got[name] = (errors[0].ename, errors[0].evalue) if errors else ("passed", "")
    assert set(got) == set(expected), "the lab's check cells differ from the solution's"
    for name, (ename, evalue) in got.items():
        assert ename == "CheckFailed", f"check {name} gave {ename}: {evalue[:200]}"
        assert re.search(re.escape(expected[name]), evalue), f"check {name}: {evalue!r} lacks {expected[name]!r}"
