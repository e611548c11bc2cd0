"""The class view (lab-env class-report): pass rates and hints from what grading wrote (pure logic)."""

from __future__ import annotations

import csv

import pytest

from lab_env.errors import LabEnvError
from lab_env.grading.batch import SHARED_RUN
from lab_env.grading.class_view import CANVAS_IDENTITY, EXPORTS, FINISHED, MOODLE_IDENTITY, read_folder, report
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
    (out / "logs").mkdir(parents=True)
    write_gradebook(results, SPEC, out / "gradebook.csv")
    write_hints(results, SPEC, out / "hints.csv")
    # What worker.py's _log writes: cell 1 (the imports) slow for everyone, cell 5 slow for one learner.
    for learner, first, fifth in (("ada", 30.0, 2.0), ("cy", 50.0, 90.0), ("di", 35.0, 4.0)):
        (out / "logs" / f"{learner}.log").write_text(
            f"  12.08s  kernel start\n  {first:.2f}s  cell 1 ok\n   0.40s  check base_agent\n"
            + ("  100.00s  cell 5 timeout\n  12.00s  kernel start\n" if learner == "di" else "")  # run again
            + f"  {fifth:.2f}s  cell 5 error: NotImplementedError: exercise not done yet\n"
        )
    # bo's graded notebook was ada's (batch.py): the same run, counted once.
    ada = (out / "logs" / "ada.log").read_text()
    (out / "logs" / "bo.log").write_text(f"{SHARED_RUN}, ada's (graded once for 2 submissions); that run's log:\n{ada}")
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


def test_where_learners_stop_is_the_first_check_they_fail(folder):
    names = [c.name for c in SPEC.checks]
    assert read_folder(folder).stops == {FINISHED: 1, names[2]: 2, names[1]: 1}


def test_scores_and_the_slowest_cells_are_reported(folder, tmp_path):
    view = read_folder(folder)
    full = SPEC.max_points
    assert view.scores == sorted(view.scores) and view.scores[-1] == full and len(view.scores) == 4
    assert view.cells == {1: [30.0, 50.0, 35.0], 5: [2.0, 90.0, 4.0]}
    text = report([folder], tmp_path / "report")[0].read_text()
    assert f"| {full} (full) | 1 |" in text
    slow = [line for line in text.splitlines() if line.startswith("| cell ")]
    assert slow[0].startswith("| cell 1: `%load_ext lab_env.notebooks.magics`") and slow[0].endswith("| 35.0 | 50.0 |")
    assert slow[1].endswith("| 4.0 | 90.0 |"), "the median, not one learner's outlier, ranks a cell"


def test_the_report_is_also_a_notebook_and_a_web_page(folder, tmp_path):
    import nbformat

    report([folder], tmp_path / "report")
    nb = nbformat.read(tmp_path / "report" / "class-report.ipynb", as_version=4)
    assert nb.cells[0].source.startswith("# Where the class gets stuck")
    assert "image/png" in nb.cells[-1].outputs[0]["data"]
    page = (tmp_path / "report" / "class-report.html").read_text()
    assert "where learners stop" in page and "data:image/png;base64," in page and "<table" in page


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_gradebook_exports_follow_canvas_and_moodle_layouts(folder, tmp_path):
    """Canvas: its five identity columns, then one column per assignment, a Points Possible row, learners
    matched on SIS Login ID. Moodle: a user-identifying column, then one column per grade item."""
    second = tmp_path / "grades-02"
    spec02 = load_spec("02")
    second.mkdir()
    write_gradebook([Graded("ada", spec02.lab, "graded", checks=[])], spec02, second / "gradebook.csv")
    report([folder, second], tmp_path / "report")
    canvas = _rows(tmp_path / "report" / EXPORTS["canvas"])
    assert tuple(canvas[0][:5]) == CANVAS_IDENTITY and len(canvas[0]) == 7
    assert canvas[0][5].startswith("Lab 01: ") and canvas[0][6].startswith("Lab 02: ")
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][5:] == [str(SPEC.max_points), str(spec02.max_points)]
    body = {row[3]: row for row in canvas[2:]}
    assert sorted(body) == ["ada", "bo", "cy", "di", "ed"]
    assert body["ada"][5:] == [str(SPEC.max_points), "0"] and body["ed"][5:] == ["0", ""]
    assert all(row[0] == row[3] and row[1] == row[2] == row[4] == "" for row in canvas[2:])
    moodle = _rows(tmp_path / "report" / EXPORTS["moodle"])
    assert tuple(moodle[0][:1]) == MOODLE_IDENTITY and moodle[0][1:] == canvas[0][5:]
    assert {row[0]: row[1:] for row in moodle[1:]} == {name: row[5:] for name, row in body.items()}


@pytest.mark.parametrize(
    ("top", "bands"),
    [(16, ["0-2", "3-5", "6-8", "9-11", "12-15", "16 (full)"]), (6, ["0", "1", "2", "3", "4-5", "6 (full)"])],
)
def test_scores_fall_in_fifths_of_the_points(top, bands):
    from lab_env.grading.class_view import _distribution

    rows = _distribution(list(range(top + 1)), top)
    assert [band for band, _ in rows] == bands and sum(n for _, n in rows) == top + 1
