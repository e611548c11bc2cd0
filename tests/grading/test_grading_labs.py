"""Labs 02 to 07 graded end to end. Their checks take paths in the kernel's
workspace, plain values (topic names), apps and the learner's functions,
which the grader resolves from its own process, and judge the stack from
there. The solution gets full marks, the unsolved lab none, each check with
its own message. In the full tier (LAB_ENV_CONTAINERS=1, lab-env's own engine
up for the run) each submission is graded in its sandbox, as `lab-env grade`
does by default (lab 05's cluster read inside it), except labs in sandbox.NOT_YET (none
today) and, here, those UNDER_INVESTIGATION (none today)."""

from __future__ import annotations

import os

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.generate import LABS_DIR
from lab_env.grading.sandbox import NOT_YET
from lab_env.grading.spec import load_spec
from lab_env.runtime.clusters.native import NativeCluster

pytestmark = pytest.mark.stack  # each lab's test may run beside another (conftest.SIDE_BY_SIDE)
# Graded here, unsolved included: the only run of each unsolved lab in the suite.
LABS = ["02", "03", "04", "05", "06", "07"]


# Labs graded here without a sandbox while a failure in one is looked into: none today. Lab 06 was,
# after final-44-busy lost its contract-net worker at start ("the app or its sidecar exited"). A
# likely cause was found since: two gradings at once (this file's tests on the suite's two workers)
# both took sandbox slots 0 and 1, so their sidecars chose ports from the same slices (now leased
# machine-wide, sandbox.lease_slot).
UNDER_INVESTIGATION: set[str] = set()


def _sandbox(lab: str) -> str:
    inside = lab not in NOT_YET and lab not in UNDER_INVESTIGATION
    return "on" if os.environ.get("LAB_ENV_CONTAINERS") == "1" and inside else "off"


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
    results, out = grade_folder(folder, lab, jobs=2, progress=False, sandbox=_sandbox(lab))
    # This batch's runs only: lab 05's notebook on the other test worker has a cluster of its own.
    tokens = {r.run_token for r in results}
    assert [c.name for c in clusters.glob("*") if c.name.rsplit("-", 1)[-1] in tokens] == [], (
        "a graded run left a cluster behind"
    )
    by_name = {r.learner: r for r in results}
    assert by_name["ada"].sandboxed == (_sandbox(lab) == "on")
    if by_name["ada"].sandboxed:  # the logs of the apps it started outlive the sandbox
        kept = {p.name for p in (out / "logs" / "ada-apps").rglob("*.log")}
        assert "daprd.log" in kept, f"the apps' logs were not kept: {sorted(kept)}"  # (an app.log may be empty)
    assert [(c.name, c.message) for c in by_name["ada"].checks if not c.passed] == []
    assert by_name["ada"].total == spec.max_points
    assert [c.name for c in by_name["zed"].checks if c.passed] == []
    expected = {c.name: c.cell.metadata["lab_env"]["expect_unsolved"] for c in spec.checks}
    assert {c.name for c in by_name["zed"].checks} == set(expected)
    for check in by_name["zed"].checks:
        assert check.message.startswith(expected[check.name]), (check.name, check.message)
