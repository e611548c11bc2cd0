"""`lab-env grade` on fixture submissions of lab 01, against the live stack.

The fixtures are made from the solution notebook at test time, so they
follow it when it changes: a correct one, a partly solved one, the partial
one with its check cells tampered with, one with an endless loop, a corrupt
file, an empty learner folder, and a notebook of another lab.
"""

from __future__ import annotations

import copy
import csv
import re
import xml.etree.ElementTree as ET

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.spec import load_spec
from lab_env.notebooks.generate import strip_solutions, student_version

pytestmark = pytest.mark.stack
SPEC = load_spec("01")
APP_CELL_MARK = "%%app_file marketplace_actors.py"
CELL_TIMEOUT = 75


def _solution() -> nbformat.NotebookNode:
    nb = nbformat.read(SPEC.solution, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _cell(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if text in c.source)


def _partial() -> nbformat.NotebookNode:
    """handle and restock solved; reserve, the reminder and idle_config not."""
    nb = student_version(_solution(), "01_actors.ipynb")
    solved = _cell(_solution(), APP_CELL_MARK).source
    _cell(nb, APP_CELL_MARK).source = strip_solutions(solved, keep=frozenset({0, 1}))
    # The learner's notebook-level exercises are done.
    for marker in ("async def reserve_concurrently", "async def activate"):
        _cell(nb, marker).source = _cell(_solution(), marker).source
    return nb


def _tampered() -> nbformat.NotebookNode:
    nb = _partial()
    _cell(nb, "check.product_stock").source = 'print("\\u2705 ProductActor stock: passed")'
    nb.cells.remove(_cell(nb, "check.reminder_outlives_crash"))
    setup = nb.cells.index(_cell(nb, "from lab_env.checks import lab01 as check"))
    fake = nbformat.v4.new_code_cell("class check:  # always passes\n    def __getattr__(self, n): return lambda *a: None")
    nb.cells.insert(setup + 1, fake)
    return nb


def _endless_loop() -> nbformat.NotebookNode:
    """A learner cell that never ends, before the turn-based exercise."""
    nb = _solution()
    at = nb.cells.index(_cell(nb, "async def reserve_concurrently"))
    nb.cells.insert(at, nbformat.v4.new_code_cell("while market.alive():  # watch the app\n    pass"))
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab01-submissions")
    nbformat.write(_solution(), folder / "ada.ipynb")
    (folder / "bo").mkdir()
    nbformat.write(_partial(), folder / "bo" / "01_actors.ipynb")
    nbformat.write(_tampered(), folder / "cy.ipynb")
    nbformat.write(_endless_loop(), folder / "di.ipynb")
    (folder / "ed.ipynb").write_text('{"cells": [ this is not json')
    (folder / "fay").mkdir()
    other = copy.deepcopy(_partial())
    other.metadata["lab_env"] = {"lab": "02_pubsub"}
    nbformat.write(other, folder / "gus.ipynb")
    results, out = grade_folder(folder, "01", jobs=2, cell_timeout=CELL_TIMEOUT, timeout=600, progress=False)
    return results, out


def test_gradebook_rows(graded):
    _, out = graded
    with open(out / "gradebook.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["learner", "lab", "status", "base_agent", "product_stock", "capabilities",
                       "idle_deactivation", "turn_based", "reminder_outlives_crash", "scale", "total", "max", "reason"]
    assert rows[1:] == [
        ["ada", "01_actors", "graded", "2", "2", "1", "2", "2", "2", "1", "12", "12", ""],
        ["bo", "01_actors", "graded", "2", "0", "1", "0", "0", "0", "1", "4", "12", ""],
        ["cy", "01_actors", "graded", "2", "0", "1", "0", "0", "0", "1", "4", "12", ""],
        ["di", "01_actors", "graded", "2", "2", "1", "2", "2", "2", "1", "12", "12", ""],
        ["ed", "01_actors", "not graded", "0", "0", "0", "0", "0", "0", "0", "0", "12", "corrupt notebook: not valid JSON"],
        ["fay", "01_actors", "not graded", "0", "0", "0", "0", "0", "0", "0", "0", "12", "no notebook handed in"],
        ["gus", "01_actors", "not graded", "0", "0", "0", "0", "0", "0", "0", "0", "12",
         "wrong lab: this is 02_pubsub, expected 01_actors"],
    ]


def test_tampering_gains_nothing(graded):
    results, _ = graded
    by_name = {r.learner: r for r in results}
    assert [(c.name, c.message) for c in by_name["cy"].checks] == [(c.name, c.message) for c in by_name["bo"].checks]


def test_feedback_says_what_failed_and_how_to_fix_it(graded):
    _, out = graded
    feedback = (out / "feedback" / "bo.md").read_text()
    assert "Score: **4 / 12**" in feedback
    line = next(line for line in feedback.splitlines() if line.startswith("| product_stock "))
    assert line.startswith("| product_stock | 0/2 | FAIL | ProductActor stock: not done yet: replace `raise NotImplementedError`")
    assert "*Hint: keep the count in self._state_manager" in line
    loop = (out / "feedback" / "di.md").read_text()
    assert "Score: **12 / 12**" in loop  # the endless cell cost nothing the checks need
    assert re.search(r"- code cell \d+ \('while market.alive\(\):  # watch the app'\) timed out after 75 s", loop)
    assert "**Not graded:** corrupt notebook: not valid JSON" in (out / "feedback" / "ed.md").read_text()


def test_junit_has_a_case_per_check_and_learner(graded):
    _, out = graded
    root = ET.parse(out / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["ada", "bo", "cy", "di", "ed", "fay", "gus"]
    assert suites["ada"].get("failures") == "0" and len(suites["ada"].findall("testcase")) == 7
    assert suites["bo"].get("failures") == "4"
    assert suites["ed"].find("testcase/error").get("message") == "corrupt notebook: not valid JSON"


def test_no_learner_app_is_left_running(graded):
    from lab_env.apps import running_apps

    assert [a for a in running_apps() if a.startswith(("marketplace-", "warehouse-"))] == []
