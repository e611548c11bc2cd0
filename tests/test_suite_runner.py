"""The test runner's own rules: a file runs on one worker unless it is listed
SIDE_BY_SIDE, and a serial test refuses to run on a worker."""

from __future__ import annotations

import os
import subprocess
import sys

from lab_env.core.paths import REPO_ROOT


def test_a_file_is_one_unit_of_work_unless_its_tests_run_side_by_side(request):
    work_unit = request.config.pluginmanager.get_plugin(str(REPO_ROOT / "conftest.py")).work_unit
    assert work_unit("solutions/01_actors.ipynb::Cell 3") == "solutions/01_actors.ipynb"
    assert work_unit("tests/test_grading.py::test_gradebook_rows") == "tests/test_grading.py"
    assert work_unit("tests/test_browser.py::test_walk[01]") == "tests/test_browser.py"
    side = "tests/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[03]"
    assert work_unit(side) == side


def test_a_serial_test_refuses_to_run_on_a_worker():
    # It fails in its set-up, before any fixture: the stack is not touched.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "1",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/test_lifecycle.py::test_missing_daprd_gives_one_line",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "SUITE_TIMING_OUT")},
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "marked serial" in done.stdout and "must run alone" in done.stdout, done.stdout[-2000:]
