"""The test runner's own rules: a file runs on one worker unless it is listed
SIDE_BY_SIDE, a serial test refuses to run on a worker, and the gate (ruff
format, ruff check, mypy) stops a run before any test when it finds anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lab_env.core.paths import REPO_ROOT
from tests.run_suite import gate


def test_a_file_is_one_unit_of_work_unless_its_tests_run_side_by_side(request):
    work_unit = request.config.pluginmanager.get_plugin(str(REPO_ROOT / "conftest.py")).work_unit
    assert work_unit("solutions/01_actors.ipynb::Cell 3") == "solutions/01_actors.ipynb"
    assert work_unit("tests/grading/test_grading.py::test_gradebook_rows") == "tests/grading/test_grading.py"
    assert work_unit("tests/browser/test_browser.py::test_walk[01]") == "tests/browser/test_browser.py"
    side = "tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[03]"
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
            "tests/stack/test_lifecycle.py::test_missing_daprd_gives_one_line",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "SUITE_TIMING_OUT")},
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "marked serial" in done.stdout and "must run alone" in done.stdout, done.stdout[-2000:]


GOOD = "def double(x: int) -> int:\n    return 2 * x\n"


def _project(folder: Path, source: str) -> Path:
    """A package with one module, configured as this repository configures the gate's tools."""
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text(source)
    (folder / "pyproject.toml").write_text(
        '[tool.ruff]\nline-length = 120\n\n[tool.ruff.lint]\nselect = ["E", "F", "W", "I", "UP", "B"]\n\n'
        f'[tool.mypy]\nfiles = ["pkg"]\ncache_dir = "{folder.parent / "mypy-cache"}"\n'
    )
    return folder


def test_the_gate_passes_clean_code_and_stops_at_a_format_lint_or_type_finding(tmp_path, capsys):
    # The real ruff and mypy of the venv, as tests/run_suite.py runs them before any test.
    assert gate(_project(tmp_path / "clean", GOOD)) is None
    unformatted = gate(_project(tmp_path / "format", GOOD.replace("2 * x", "2*x")))
    assert unformatted is not None and "ruff format`" in unformatted
    assert "1 file would be reformatted" in capsys.readouterr().err
    unused_import = gate(_project(tmp_path / "lint", "import os\n\n\n" + GOOD))
    assert unused_import is not None and "ruff check --fix`" in unused_import
    assert "F401" in capsys.readouterr().err
    wrong_type = gate(_project(tmp_path / "types", GOOD.replace("2 * x", "str(2 * x)")))
    assert wrong_type is not None and "mypy`" in wrong_type
    assert "Incompatible return value type" in capsys.readouterr().err
