"""`lab-env grade` with each submission in a sandbox (lab_env/grading/sandbox.py), on the live stack
and lab-env's own Docker engine.

The solution still gets full marks (its app crashed and restarted inside its container, its
second host failed over), and each operating-system cheat of grading_fixtures.OS_CHEATS scores
exactly as the unsolved lab: reading the solution notebook on the grading machine, reading the
grader's environment through /proc, killing the grader's workers, writing into other
submissions' files. The first one is graded once more without a sandbox, where it must gain
marks: proof that the cheat works and that the sandbox is what stops it.
"""

from __future__ import annotations

import secrets

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.run import NOT_SANDBOXED, SANDBOXED
from tests import own_engine
from tests.grading.grading_fixtures import CANARY, OS_CHEATS, cheat_notebook, learner_name, solution, unsolved

# Serial: it needs the native stack (phase 1 owns it) and the engine. The timeout is a safety net only.
pytestmark = [pytest.mark.stack, pytest.mark.containers, pytest.mark.serial, pytest.mark.timeout(3600)]
ours = own_engine.ours  # the fixture
CELL_TIMEOUT = 300  # a safety net; every cell here ends in seconds
SECRET = secrets.token_hex(8)


@pytest.fixture(scope="module")
def graded(ours, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab01-sandboxed")
    nbformat.write(solution(), folder / "ada.ipynb")
    nbformat.write(unsolved(), folder / "zed.ipynb")
    for cheat in OS_CHEATS:
        nbformat.write(cheat_notebook(cheat), folder / f"{learner_name(cheat)}.ipynb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CANARY, SECRET)  # in the grader's own environment: the /proc reader looks for it
        results, out = grade_folder(
            folder, "01", jobs=2, cell_timeout=CELL_TIMEOUT, timeout=1200, progress=False, sandbox="on"
        )
    return {r.learner: r for r in results}, out


@pytest.fixture(scope="module")
def unsandboxed(ours, tmp_path_factory):
    """The solution reader alone, graded as the grader's user."""
    folder = tmp_path_factory.mktemp("lab01-not-sandboxed")
    nbformat.write(cheat_notebook(OS_CHEATS[0]), folder / "reader.ipynb")
    results, _ = grade_folder(folder, "01", cell_timeout=CELL_TIMEOUT, timeout=1200, progress=False, sandbox="off")
    return results[0]


def _pattern(result) -> list[tuple[str, bool]]:
    return [(c.name, c.passed) for c in result.checks]


def test_the_solution_gets_full_marks_in_its_sandbox(graded):
    by_name, _ = graded
    ada = by_name["ada"]
    assert ada.status == "graded" and ada.finished, ada.reason
    assert ada.sandboxed and SANDBOXED in ada.notes
    assert [c.name for c in ada.checks if not c.passed] == [], [(c.name, c.message) for c in ada.checks]


@pytest.mark.parametrize("cheat", OS_CHEATS, ids=lambda c: c.name)
def test_an_operating_system_cheat_scores_as_the_unsolved_lab(graded, cheat):
    by_name, _ = graded
    got, plain = by_name[learner_name(cheat)], by_name["zed"]
    assert got.status == "graded" and got.finished, (got.reason, got.notes)
    assert _pattern(got) == _pattern(plain), f"{cheat.name}: {[(c.name, c.message) for c in got.checks]}"
    assert got.total == plain.total


def test_nothing_of_the_graders_environment_reaches_the_feedback(graded):
    _, out = graded
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_without_a_sandbox_the_solution_reader_gains_marks(graded, unsandboxed):
    by_name, _ = graded
    assert any(n.startswith(NOT_SANDBOXED) for n in unsandboxed.notes) and not unsandboxed.sandboxed
    assert unsandboxed.total > by_name["zed"].total, [(c.name, c.passed, c.message) for c in unsandboxed.checks]


def test_no_sandbox_container_is_left(graded, ours):
    names = ours.check("ps", "-a", "--format", "{{.Names}}").split()
    assert not [n for n in names if n.startswith("lab-env-grade-")], names
