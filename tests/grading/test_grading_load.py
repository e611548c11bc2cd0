"""Correct work gets full marks on a busy machine: the solution is graded with
``--jobs 2`` while a busy loop runs on every core. The grader's limits are
its defaults: safety nets, never what decides a right answer."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest

from lab_env.grading import grade_folder
from tests.grading.grading_fixtures import SPEC, solution

# serial: its busy loops take both cores, and the load beside it would be more than it says.
pytestmark = [pytest.mark.stack, pytest.mark.serial]


@pytest.fixture
def busy_cores():
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    yield len(loops)
    for loop in loops:
        loop.kill()
        loop.wait()


def test_the_solution_gets_full_marks_under_cpu_load(busy_cores, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    for learner in ("ann", "ben"):
        nbformat.write(solution(), folder / f"{learner}.ipynb")
    results, _ = grade_folder(folder, "01", jobs=2, progress=False, regrade_identical=True, sandbox="off")
    lost = [f"{r.learner}: {c.message}" for r in results for c in r.checks if not c.passed]
    assert lost == [], f"with {busy_cores} busy loops beside the grader"
    assert [r.total for r in results] == [SPEC.max_points] * 2
