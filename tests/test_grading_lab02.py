"""Lab 02 graded end to end: its checks take paths in the kernel's workspace,
plain values and the learner's sync functions, which the grader resolves
from its own process. The solution gets full marks, the unsolved lab none."""

from __future__ import annotations

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.spec import load_spec
from lab_env.notebooks.generate import LABS_DIR

pytestmark = pytest.mark.stack
SPEC = load_spec("02")


def test_lab02_solution_full_marks_and_unsolved_none(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    solved = nbformat.read(SPEC.solution, as_version=4)
    for cell in solved.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(solved, folder / "ada.ipynb")
    nbformat.write(nbformat.read(LABS_DIR / "02_pubsub.ipynb", as_version=4), folder / "zed.ipynb")
    results, _ = grade_folder(folder, "02", jobs=2, progress=False)
    by_name = {r.learner: r for r in results}
    assert [(c.name, c.message) for c in by_name["ada"].checks if not c.passed] == []
    assert by_name["ada"].total == SPEC.max_points
    assert [c.name for c in by_name["zed"].checks if c.passed] == []
    expected = {c.name: c.cell.metadata["lab_env"]["expect_unsolved"] for c in SPEC.checks}
    for check in by_name["zed"].checks:
        assert check.message.startswith(expected[check.name]), (check.name, check.message)
