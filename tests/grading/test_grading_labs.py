"""Labs 02 to 06 graded end to end. Their checks take paths in the kernel's
workspace, plain values (topic names), apps and the learner's functions,
which the grader resolves from its own process, and judge the stack from
there. The solution gets full marks, the unsolved lab none, each check with
its own message."""

from __future__ import annotations

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.generate import LABS_DIR
from lab_env.grading.spec import load_spec
from lab_env.runtime.clusters.native import NativeCluster

pytestmark = pytest.mark.stack  # each lab's test may run beside another (conftest.SIDE_BY_SIDE)
# Graded here, unsolved included: the only run of each unsolved lab in the suite.
LABS = ["02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("lab", LABS)
def test_solution_full_marks_and_unsolved_none(lab, tmp_path):
    spec = load_spec(lab)
    folder = tmp_path / "submissions"
    folder.mkdir()
    solved = nbformat.read(spec.solution, as_version=4)
    for cell in solved.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(solved, folder / "ada.ipynb")
    nbformat.write(nbformat.read(LABS_DIR / spec.solution.name, as_version=4), folder / "zed.ipynb")
    clusters = NativeCluster().workdir / "clusters"
    results, _ = grade_folder(folder, lab, jobs=2, progress=False, sandbox="off")
    # This batch's runs only: lab 05's notebook on the other test worker has a cluster of its own.
    tokens = {r.run_token for r in results}
    assert [c.name for c in clusters.glob("*") if c.name.rsplit("-", 1)[-1] in tokens] == [], (
        "a graded run left a cluster behind"
    )
    by_name = {r.learner: r for r in results}
    assert [(c.name, c.message) for c in by_name["ada"].checks if not c.passed] == []
    assert by_name["ada"].total == spec.max_points
    assert [c.name for c in by_name["zed"].checks if c.passed] == []
    expected = {c.name: c.cell.metadata["lab_env"]["expect_unsolved"] for c in spec.checks}
    assert {c.name for c in by_name["zed"].checks} == set(expected)
    for check in by_name["zed"].checks:
        assert check.message.startswith(expected[check.name]), (check.name, check.message)
