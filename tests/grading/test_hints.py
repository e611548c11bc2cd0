"""Hints in levels (lab_env.labs.hints): the stub's first hint states the idea,
never the answer's code; later levels come from hint() and are recorded."""

from __future__ import annotations

import nbformat
import pytest

from lab_env.grading.generate import INSTRUCTOR_TAG, SOLUTIONS_DIR, parse_regions
from lab_env.labs import course, hints
from lab_env.labs.hints import gives_away

# Measured with gives_away on solutions/ before hints came in levels (commit a30bc1c): 23 of 45.
SHARE_BEFORE = 23 / 45
SHARE_ALLOWED = 0.10


def _exercises() -> list[tuple[str, int, list[str], str]]:
    """(lab, exercise number, hint levels, solution code) of every exercise region."""
    found = []
    for path in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        number = 0
        for cell in nb.cells:
            if cell.cell_type != "code" or INSTRUCTOR_TAG in cell.metadata.get("tags", []):
                continue
            for seg in parse_regions(cell.source):
                if seg.stub is not None:
                    number += 1
                    found.append((path.name[:2], number, seg.stub.hints, "\n".join(seg.lines)))
    return found


def test_the_first_hint_gives_the_answer_away_in_at_most_a_tenth_of_the_exercises():
    exercises = _exercises()
    leaking = [
        f"lab {lab} exercise {n}" for lab, n, levels, code in exercises if levels and gives_away(levels[0], code)
    ]
    share = len(leaking) / len(exercises)
    print(
        f"first hints with the answer's code: {len(leaking)} of {len(exercises)} "
        f"({share:.0%}; before: {SHARE_BEFORE:.0%})"
    )
    assert share <= SHARE_ALLOWED, leaking


def test_gives_away_tells_the_answer_from_a_pointer_to_it():
    answer = 'return ("PUT", f"/v1.0/actors/{PRODUCT}/sku-{i}/method/Stock", b"")'
    assert gives_away('("PUT", f"/v1.0/actors/{PRODUCT}/sku-{i}/method/Stock", b"")', answer)
    assert gives_away("LEDGER.effect_once(key, step)", "LEDGER.effect_once(key, step)")  # a short answer, whole
    assert not gives_away("call one method of one actor through the sidecar's actor API", answer)
    assert not gives_away("the method path is /v1.0/actors/<type>/<id>/method/<method>", answer)


def test_every_exercise_with_code_to_write_has_a_first_hint():
    assert [f"lab {lab} exercise {n}" for lab, n, levels, _ in _exercises() if not levels] == []


def test_hint_reveals_the_next_level_each_time_and_the_record_keeps_the_deepest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_ENV_PROGRESS_FILE", str(tmp_path / "progress.json"))
    lab, number, levels, _ = next(e for e in _exercises() if len(e[2]) >= 3)
    hints.hint(lab, number)
    assert f"Hint 2 of {len(levels)}" in capsys.readouterr().out  # the stub showed the first
    hints.hint(lab, number)
    shown = capsys.readouterr().out
    assert levels[2] in shown and hints.asked_for(_with_output(shown), lab) == {number: (3, len(levels))}
    hints.hint(lab, number, 1)  # looking back does not lower the record
    assert course.hints_revealed() == {lab: {str(number): 3}}
    assert f"hint(..., {number}) to level 3" in course.progress_table()


def _with_output(text: str):
    cell = nbformat.v4.new_code_cell("hint(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return nbformat.v4.new_notebook(cells=[cell])


def test_an_exercise_without_hints_is_one_line_naming_those_that_have_them():
    with pytest.raises(hints.LabEnvError, match="has no hints numbered 99"):
        hints.levels("01", 99)
