"""`lab-env grade` on lab 01 submissions, against the live stack.

One batch (``--jobs 2``) holds: the solution, a partly solved notebook, the
partial one with its check cells tampered with, the solution with an endless
loop in one answer, a corrupt file, an empty folder, a notebook of another
lab, the unsolved lab, and every cheat of grading_fixtures.CHEATS. Each
cheat must score exactly as the unsolved lab, check by check. Submissions
whose graded notebooks are identical run once (the unsolved lab and the
cheats the grader undoes): the batch runs 10 notebooks for the 24 it grades
(it ran all 24 before).

The unsolved lab's checks must each fail with their own message, as those of
labs 02 on do in tests/grading/test_grading_labs.py.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.batch import SHARED_RUN
from tests.grading.grading_fixtures import (
    CHEATS,
    SPEC,
    cheat_notebook,
    corrupt_json,
    endless_loop,
    learner_name,
    other_lab,
    partial,
    solution,
    tampered,
    unsolved,
)

# The module's fixture grades ten notebooks (jobs=2) before any test: about 700 s here when quiet, and 951 s
# with a busy loop beside the suite, past pytest's 900 s default. A safety net must not decide a pass.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(3600)]
# A safety net for the one endless loop here; every correct cell ends in a few seconds.
CELL_TIMEOUT = 120


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab01-submissions")
    nbformat.write(solution(), folder / "ada.ipynb")
    (folder / "bo").mkdir()
    nbformat.write(partial(), folder / "bo" / "01_actors.ipynb")
    nbformat.write(tampered(), folder / "cy.ipynb")
    nbformat.write(endless_loop(), folder / "di.ipynb")
    (folder / "ed.ipynb").write_text(corrupt_json())
    (folder / "fay").mkdir()
    nbformat.write(other_lab(), folder / "gus.ipynb")
    nbformat.write(unsolved(), folder / "zed.ipynb")
    for cheat in CHEATS:
        nbformat.write(cheat_notebook(cheat), folder / f"{learner_name(cheat)}.ipynb")
    results, out = grade_folder(
        folder, "01", jobs=2, cell_timeout=CELL_TIMEOUT, timeout=900, progress=False, sandbox="off"
    )
    return {r.learner: r for r in results}, out


def _pattern(result) -> list[tuple[str, bool]]:
    return [(c.name, c.passed) for c in result.checks]


def test_gradebook_rows(graded):
    _, out = graded
    with open(out / "gradebook.csv") as f:
        rows = {row[0]: row for row in csv.reader(f)}
    assert rows["learner"] == [
        "learner",
        "lab",
        "status",
        "base_agent",
        "product_stock",
        "capabilities",
        "idle_deactivation",
        "turn_based",
        "reminder_outlives_crash",
        "failover",
        "scale",
        "hint_deduction",
        "total",
        "max",
        "reason",
    ]
    assert rows["ada"] == ["ada", "01_actors", "graded", "2", "2", "1", "2", "2", "2", "2", "1", "0", "14", "14", ""]
    assert rows["bo"] == ["bo", "01_actors", "graded", "2", "0", "1", "0", "0", "0", "0", "1", "0", "4", "14", ""]
    assert rows["cy"] == ["cy", "01_actors", "graded", "2", "0", "1", "0", "0", "0", "0", "1", "0", "4", "14", ""]
    # The endless loop is in the scale answer: it costs that point only.
    assert rows["di"] == ["di", "01_actors", "graded", "2", "2", "1", "2", "2", "2", "2", "0", "0", "13", "14", ""]
    assert rows["ed"][2:] == ["not graded", *["0"] * 10, "14", "corrupt notebook: not valid JSON"]
    assert rows["fay"][2:] == ["not graded", *["0"] * 10, "14", "no notebook handed in"]
    assert rows["gus"][2:] == ["not graded", *["0"] * 10, "14", "wrong lab: this is 02_pubsub, expected 01_actors"]
    assert rows["zed"] == ["zed", "01_actors", "graded", "0", "0", "1", "0", "0", "0", "0", "0", "0", "1", "14", ""]


@pytest.mark.parametrize("cheat", CHEATS, ids=lambda c: c.name)
def test_a_cheat_scores_as_the_unsolved_lab(graded, cheat):
    by_name, _ = graded
    got, plain = by_name[learner_name(cheat)], by_name["zed"]
    assert got.status == "graded", got.reason
    assert _pattern(got) == _pattern(plain), f"{cheat.name}: {[(c.name, c.message) for c in got.checks]}"
    assert got.total == plain.total
    if cheat.note:
        assert any(cheat.note in note for note in got.notes), f"{cheat.name}: no note {cheat.note!r} in {got.notes}"


def test_tampered_check_cells_gain_nothing_and_are_named(graded):
    by_name, _ = graded
    assert [(c.name, c.message) for c in by_name["cy"].checks] == [(c.name, c.message) for c in by_name["bo"].checks]
    assert any("check cells you edited" in n and "product_stock" in n for n in by_name["cy"].notes)
    assert any("missing from your notebook" in n and "reminder_outlives_crash" in n for n in by_name["cy"].notes)
    assert any("1 code cell(s) you added were not run" in n for n in by_name["cy"].notes)


def test_feedback_says_what_failed_and_how_to_fix_it(graded):
    _, out = graded
    feedback = (out / "feedback" / "bo.md").read_text()
    assert "Score: **4 / 14**" in feedback
    line = next(line for line in feedback.splitlines() if line.startswith("| product_stock "))
    assert line.startswith(
        "| product_stock | 0/2 | FAIL | ProductActor stock: not done yet: replace `raise NotImplementedError`"
    )
    assert "*Hint: keep the count in self._state_manager" in line
    assert "graded at 2,000 actors" in feedback  # the size declared for grading is stated
    loop = (out / "feedback" / "di.md").read_text()
    assert "Score: **13 / 14**" in loop
    # Interrupted, it either stops (the run goes on) or takes the kernel with it (the answer is stubbed and
    # the notebook re-run): the same score either way, and the note names the cell.
    assert re.search(
        r"- the cell starting 'warehouse = start_app\(unique_name\(\"warehouse\"\), uv' "
        r"(was stopped after 120 s|stopped the notebook's kernel)",
        loop,
    )
    assert "**Not graded:** corrupt notebook: not valid JSON" in (out / "feedback" / "ed.md").read_text()
    assert (out / "logs" / "ada.log").read_text().count("check ") == len(SPEC.checks)


def test_junit_has_a_case_per_check_and_learner(graded):
    _, out = graded
    root = ET.parse(out / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert {"ada", "bo", "cy", "di", "ed", "fay", "gus", "zed"} <= set(suites)
    assert suites["ada"].get("failures") == "0" and len(suites["ada"].findall("testcase")) == 8
    assert suites["bo"].get("failures") == "5"
    assert suites["ed"].find("testcase/error").get("message") == "corrupt notebook: not valid JSON"


def test_nothing_of_any_submission_is_left_running(graded):
    from lab_env.runtime.apps import running_apps

    by_name, _ = graded
    assert all(r.run_token for r in by_name.values() if r.status == "graded")
    tokens = {r.run_token for r in by_name.values() if r.run_token}
    # Only this batch's runs: a lab 01 notebook on the other test worker has apps of the same names.
    assert [a for a in running_apps() if a.rsplit("-", 1)[-1] in tokens] == []


def test_identical_graded_notebooks_run_once(graded):
    by_name, out = graded
    runs: dict[str, set[str]] = {}  # one run token per notebook the grader ran, shared by identical ones
    for result in by_name.values():
        if result.status == "graded":
            runs.setdefault(result.run_token, set()).add(result.learner)
    group = {learner: learners for learners in runs.values() for learner in learners}
    # Outputs, ids and metadata, and the check cells are the grader's own: the notebook it runs is the unsolved lab.
    assert {
        "cheat-fake-pass-lines-in-outputs",
        "cheat-change-cell-ids-and-notebook-metadata",
        "cheat-edit-check-cells",
        "cheat-delete-check-cells",
    } <= group["zed"]
    assert group["bo"] == {"bo", "cy"}  # cy's tampering is undone: bo's partial answers are what runs
    # What the screen lets through runs on its own: each of those cheats is really tried against the grader.
    for learner in ["ada", "di", *(learner_name(c) for c in CHEATS if "slips past" in c.name)]:
        assert group[learner] == {learner}, learner
    # In each group one notebook ran; the others' logs say they share its run.
    for learners in runs.values():
        shared = {n for n in learners if (out / "logs" / f"{n}.log").read_text().startswith(SHARED_RUN)}
        assert len(learners - shared) == 1, (learners, shared)
    print(f"{len(runs)} notebooks ran for {len(group)} graded submissions")


def test_unsolved_lab_checks_fail_with_their_own_message(graded):
    by_name, _ = graded
    expected = {
        c.name: c.cell.metadata["lab_env"]["expect_unsolved"]
        for c in SPEC.checks
        if "instructor" not in c.cell.metadata.get("tags", [])
    }
    got = {c.name: c for c in by_name["zed"].checks}
    assert set(expected) <= set(got)
    for name, text in expected.items():
        assert not got[name].passed and got[name].message.startswith(text), (name, got[name].message)


def test_the_class_report_and_exports_come_from_the_graded_class(graded, tmp_path):
    """From what this batch really wrote (gradebook, hints, worker logs): the report's totals, the
    slowest cells of the real runs, and each learner's total in both exports."""
    from lab_env.grading.class_view import EXPORTS, read_folder, report

    results, out = graded
    view = read_folder(out)
    assert view.totals == {name: r.total for name, r in results.items()}
    assert view.cells and all(len(times) <= view.graded for times in view.cells.values())
    markdown, _ = report([out], tmp_path)
    assert "| slowest cells of a graded run |" in markdown.read_text()
    with open(tmp_path / EXPORTS["canvas"], newline="") as f:
        canvas = {row[3]: row[5] for row in list(csv.reader(f))[2:]}
    with open(tmp_path / EXPORTS["moodle"], newline="") as f:
        moodle = {row[0]: row[1] for row in list(csv.reader(f))[1:]}
    assert canvas == moodle == {name: str(r.total) for name, r in results.items()}
