"""The class view (lab-env class-report): pass rates and hints from what grading wrote (pure logic)."""

from __future__ import annotations

import csv

import pytest

from lab_env.errors import LabEnvError
from lab_env.grading.class_view import read_folder, report
from lab_env.grading.report import write_gradebook, write_hints
from lab_env.grading.run import CheckResult, Graded
from lab_env.grading.spec import load_spec

SPEC = load_spec("01")


def _graded(learner: str, passing: set[str], hints: dict[int, tuple[int, int]] | None = None) -> Graded:
    checks = [
        CheckResult(c.name, c.points, c.points if c.name in passing else 0, c.name in passing, "") for c in SPEC.checks
    ]
    return Graded(learner, SPEC.lab, "graded", checks=checks, hints=hints or {})


@pytest.fixture
def folder(tmp_path):
    names = [c.name for c in SPEC.checks]
    results = [
        _graded("ada", set(names), {6: (3, 3)}),
        _graded("bo", set(names[:2]), {6: (2, 3)}),
        _graded("cy", set(names[:1])),
        _graded("di", set(names[:2]), {6: (3, 3), 8: (2, 3)}),
        Graded("ed", SPEC.lab, "not graded", "no notebook handed in"),
    ]
    out = tmp_path / "grades-01"
    out.mkdir()
    write_gradebook(results, SPEC, out / "gradebook.csv")
    write_hints(results, SPEC, out / "hints.csv")
    return out


def test_pass_rates_count_graded_learners_only_and_hints_count_learners_per_level(folder):
    view = read_folder(folder)
    first, second, third = (c.name for c in SPEC.checks[:3])
    assert (view.graded, view.not_graded) == (4, 1)
    assert (view.passed[first], view.passed[second], view.passed[third]) == (1.0, 0.75, 0.25)
    assert view.hints == {'hint("01", 6)': {3: 2, 2: 1}, 'hint("01", 8)': {2: 1}}


def test_the_report_lists_the_hardest_check_first_and_draws_it(folder, tmp_path):
    markdown, picture = report([folder], tmp_path / "report")
    text = markdown.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("% |")]
    assert rows[0].endswith("| 25% |") and rows[-1].endswith("| 100% |"), rows
    assert "4 learners graded" in text and "1 not graded" in text
    assert picture.stat().st_size > 5_000


def test_a_folder_without_a_gradebook_is_one_line(tmp_path):
    with pytest.raises(LabEnvError, match="has no gradebook.csv"):
        read_folder(tmp_path)


def test_the_hints_file_names_each_call(folder):
    with open(folder / "hints.csv", newline="") as f:
        assert next(csv.DictReader(f)) == {
            "learner": "ada",
            "lab": SPEC.lab,
            "hint": 'hint("01", 6)',
            "level": "3",
            "levels": "3",
        }
