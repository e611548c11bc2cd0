"""`lab-env solve NN N`: one exercise filled in with its solution, in the learner's own notebook,
everything else they wrote kept; recorded in the progress record and reported by the grader."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from lab_env.errors import LabEnvError
from lab_env.grading.assemble import assemble
from lab_env.grading.generate import LABS_DIR, SOLUTIONS_DIR, parse_regions
from lab_env.grading.spec import load_spec
from lab_env.labs import course
from lab_env.labs.solve import MARK, exercise_cells, solve, solved_in

LABS = [p.name for p in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))]


@pytest.fixture
def record(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv("LAB_ENV_PROGRESS_FILE", str(path))
    return path


def _copy(tmp_path, name: str):
    path = tmp_path / name
    shutil.copy(LABS_DIR / name, path)
    return path


def _without_marks(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if "filled in by `lab-env solve" not in line)


def _solved_source(source: str) -> str:
    """A solution cell as the learner sees it once every region is solved: markers and hint lines gone."""
    return "\n".join(line for seg in parse_regions(source) for line in seg.lines)


@pytest.mark.parametrize("name", LABS)
def test_solving_every_exercise_gives_the_solution_cells(tmp_path, record, name):
    """Each exercise lands in its own region: solving all of them, one by one, turns every exercise
    cell of the student notebook into the solution's code, and touches no other cell."""
    lab = name[:2]
    path = _copy(tmp_path, name)
    solution = nbformat.read(SOLUTIONS_DIR / name, as_version=4)
    exercises = exercise_cells(solution, name)
    assert exercises, f"lab {lab} has no exercise"
    for n in range(1, len(exercises) + 1):
        solve(lab, n, path)
    mine = {c.id: c.source for c in nbformat.read(path, as_version=4).cells}
    before = {c.id: c.source for c in nbformat.read(LABS_DIR / name, as_version=4).cells}
    exercise_ids = {solution.cells[index].id for index, _ in exercises}
    for cell in solution.cells:
        if cell.id in exercise_ids:
            assert _without_marks(mine[cell.id]) == _solved_source(cell.source), f"{name} cell {cell.id}"
    assert {i: s for i, s in mine.items() if i not in exercise_ids} == {
        i: s for i, s in before.items() if i not in exercise_ids
    }
    assert course.solved(lab) == list(range(1, len(exercises) + 1))
    assert solved_in(nbformat.read(path, as_version=4), lab) == course.solved(lab)


def test_the_learners_other_answers_in_the_same_cell_are_kept(tmp_path, record):
    """Lab 01's %%app_file cell holds several exercises: solving one keeps what the learner wrote in another."""
    name = "01_actors.ipynb"
    solution = nbformat.read(SOLUTIONS_DIR / name, as_version=4)
    exercises = exercise_cells(solution, name)
    index = next(i for i, _ in exercises if sum(1 for j, _ in exercises if j == i) > 1)
    first, second = [n for n, (i, _) in enumerate(exercises, 1) if i == index][:2]
    path = _copy(tmp_path, name)
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.id == solution.cells[index].id)
    stub_end = cell.source.index("raise NotImplementedError")  # the first region's stub
    line_end = cell.source.index("\n", stub_end)
    answer = "        my_own_answer = 42  # the learner's"
    cell.source = cell.source[:stub_end] + answer.strip() + cell.source[line_end:]
    nbformat.write(nb, path)

    solve("01", second, path)
    solved = next(c for c in nbformat.read(path, as_version=4).cells if c.id == cell.id).source
    assert "my_own_answer = 42" in solved
    assert MARK.format(lab="01", exercise=second) in solved
    assert MARK.format(lab="01", exercise=first) not in solved


def test_the_grader_says_which_exercises_were_filled_in(tmp_path, record):
    path = _copy(tmp_path, "01_actors.ipynb")
    solve("01", 2, path)
    spec = load_spec("01_actors")
    notes = assemble(nbformat.read(path, as_version=4), spec).notes
    assert any("exercise 2 filled in with the solution" in n for n in notes), notes
    clean = assemble(nbformat.read(LABS_DIR / "01_actors.ipynb", as_version=4), spec).notes
    assert not any("filled in" in n for n in clean), clean


def test_the_progress_view_shows_it(tmp_path, record):
    solve("01", 3, _copy(tmp_path, "01_actors.ipynb"))
    assert json.loads(record.read_text())["solved"] == {"01": [3]}
    assert "filled in with the solution (lab-env solve): exercise 3" in course.progress_table()


def test_wrong_numbers_and_a_deleted_cell_say_what_to_do(tmp_path, record):
    path = _copy(tmp_path, "01_actors.ipynb")
    with pytest.raises(LabEnvError, match="lab 01 has exercises 1 to"):
        solve("01", 99, path)
    with pytest.raises(LabEnvError, match="no lab '09'"):
        solve("09", 1, path)
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "%%app_file" not in c.source]
    nbformat.write(nb, path)
    with pytest.raises(LabEnvError, match="is not in 01_actors.ipynb any more"):
        solve("01", 1, path)
    assert not record.exists() or "solved" not in json.loads(record.read_text())


def test_a_wrong_answer_of_several_lines_is_replaced_whole(tmp_path, record):
    """The learner's own (wrong) answer in the exercise is what gets replaced, every line of it."""
    path = _copy(tmp_path, "02_pubsub.ipynb")
    solution = nbformat.read(SOLUTIONS_DIR / "02_pubsub.ipynb", as_version=4)
    index, _ = exercise_cells(solution)[0]
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.id == solution.cells[index].id)
    lines = cell.source.split("\n")
    at = next(i for i, line in enumerate(lines) if "raise NotImplementedError" in line)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at - 1 : at + 1] = [f"{indent}wrong_{k} = {k}  # a try that did not work" for k in range(6)]
    cell.source = "\n".join(lines)
    nbformat.write(nb, path)

    solve("02", 1, path)
    solved = next(c for c in nbformat.read(path, as_version=4).cells if c.id == cell.id).source
    answer = next(seg for seg in parse_regions(solution.cells[index].source) if seg.stub).lines
    assert "wrong_" not in solved and "\n".join(answer) in solved


def test_the_first_line_alone_tells_the_grader(tmp_path, record):
    """A notebook whose metadata lost the record (copied cells, another editor) still shows the line."""
    path = _copy(tmp_path, "01_actors.ipynb")
    solve("01", 2, path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["lab_env"].pop("solved")
    assert solved_in(nb, "01") == [2] and solved_in(nb, "02") == []


def test_a_lab_number_as_typed_is_the_labs_two_digits(tmp_path, record):
    path = _copy(tmp_path, "01_actors.ipynb")
    solve("1", 2, path)
    assert course.solved("01") == [2] and solved_in(nbformat.read(path, as_version=4), "01") == [2]


def test_a_missing_notebook_and_a_release_without_solutions_are_one_line(tmp_path, record, monkeypatch):
    with pytest.raises(LabEnvError, match="cannot read"):
        solve("01", 1, tmp_path / "nowhere.ipynb")
    monkeypatch.setattr("lab_env.grading.generate.SOLUTIONS_DIR", tmp_path / "no-solutions")
    with pytest.raises(LabEnvError, match="has no solutions"):
        solve("01", 1, _copy(tmp_path, "01_actors.ipynb"))
