"""The labs/ generator: markers, hidden checks, cleared outputs (pure logic)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from lab_env.errors import LabEnvError
from lab_env.grading.generate import build_labs, hints_file, strip_solutions, student_version


def test_solution_region_becomes_an_indented_stub_with_its_hint():
    source = (
        "def reserve(qty):\n"
        "    count = 1\n"
        "    ### BEGIN SOLUTION\n"
        "    ### HINT: subtract and save\n"
        "    count -= qty\n"
        "    return count\n"
        "    ### END SOLUTION\n"
    )
    assert strip_solutions(source) == (
        "def reserve(qty):\n"
        "    count = 1\n"
        "    # YOUR CODE HERE\n"
        "    # Hint: subtract and save\n"
        "    raise NotImplementedError('exercise not done yet: subtract and save')\n"
    )


def test_hints_come_in_levels_the_stub_shows_the_first_and_how_to_get_more(tmp_path):
    source = (
        "### BEGIN SOLUTION\n"
        "### HINT: what the exercise is about\n"
        "### HINT: which call does it\n"
        "### HINT: x = compute(1)\n"
        "x = compute(1)\n"
        "### END SOLUTION"
    )
    stub = strip_solutions(source, more=lambda n: f'hint("01", {n + 1})')
    assert "# Hint: what the exercise is about" in stub
    assert '# Stuck? hint("01", 1) shows the next hint (2 more).' in stub
    assert "which call" not in stub and "compute" not in stub
    (tmp_path / "01_demo.ipynb").write_text(nbformat.writes(new_notebook(cells=[new_code_cell(source)])))
    assert json.loads(hints_file(tmp_path)) == {
        "01": {"1": ["what the exercise is about", "which call does it", "x = compute(1)"]}
    }


def test_exercises_are_numbered_across_cells_as_hints_json_numbers_them():
    cell = "### BEGIN SOLUTION\n### HINT: one\n### HINT: two\nx = 1\n### END SOLUTION"
    lab = student_version(new_notebook(cells=[new_code_cell(cell), new_code_cell(cell + "\n" + cell)]), "03_x.ipynb")
    assert [c.source.count('hint("03", ') for c in lab.cells] == [1, 2]
    assert 'hint("03", 3)' in lab.cells[1].source


def test_region_without_hint_and_code_around_it_is_kept():
    source = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3"
    assert strip_solutions(source) == (
        "a = 1\n# YOUR CODE HERE\nraise NotImplementedError('exercise not done yet')\nc = 3"
    )


def test_a_hint_later_in_the_region_is_solution_code_not_a_hint():
    source = "### BEGIN SOLUTION\nx = 1\n### HINT: secret\n### END SOLUTION"
    assert "secret" not in strip_solutions(source)


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "without END"),
        ("x = 1\n### END SOLUTION\n", "END SOLUTION without BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "nested"),
    ],
)
def test_unbalanced_markers_are_errors(source, problem):
    with pytest.raises(LabEnvError, match=problem):
        strip_solutions(source)


def _solution_notebook() -> nbformat.NotebookNode:
    graded = new_code_cell("check.thing()", metadata={"tags": ["check"], "lab_env": {"points": 2}})
    graded.outputs = [new_output("stream", name="stdout", text="ok\n")]
    graded.execution_count = 7
    return new_notebook(
        cells=[
            new_markdown_cell("Intro <!-- BEGIN SOLUTION -->the answer is 42<!-- END SOLUTION --> end"),
            new_code_cell("### BEGIN SOLUTION\nx = 42\n### END SOLUTION"),
            graded,
            new_code_cell("check.hidden()", metadata={"tags": ["check", "instructor"]}),
        ]
    )


def test_student_version_strips_answers_hidden_checks_and_outputs():
    lab = student_version(_solution_notebook())
    assert [c.source for c in lab.cells] == [
        "Intro  end",
        "# YOUR CODE HERE\nraise NotImplementedError('exercise not done yet')",
        "check.thing()",
    ]
    assert lab.cells[2].outputs == [] and lab.cells[2].execution_count is None
    assert lab.cells[2].metadata["lab_env"] == {"points": 2}  # grading metadata survives


def test_check_mode_reports_a_stale_lab(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    nbformat.write(_solution_notebook(), solutions / "01_demo.ipynb")
    assert [p.name for p in build_labs(solutions, labs, check=True)] == ["01_demo.ipynb", "hints.json"]  # missing
    build_labs(solutions, labs)
    assert build_labs(solutions, labs, check=True) == []
    (labs / "01_demo.ipynb").write_text((labs / "01_demo.ipynb").read_text().replace("check.thing", "check.other"))
    assert [p.name for p in build_labs(solutions, labs, check=True)] == ["01_demo.ipynb"]  # edited by hand
