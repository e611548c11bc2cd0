"""`lab-env solve NN N`: fill exercise N of lab NN with its solution, in the learner's notebook.

For a learner stuck on one exercise who wants to go on with the rest. The
exercise's region is found in the learner's notebook the way the grader finds
answers (the cell by id, else by content; the region by aligning the cell with
its stub), and only that region changes: it gets the solution's lines under a
first line saying it was filled in. Everything else the learner wrote stays.

It is kept in three places: the progress record (``lab-env progress``, the
overview), the notebook's metadata, and that first line. The grader reads the
notebook's two and says in the feedback which exercises were filled in.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from lab_env.errors import LabEnvError

MARK = "# filled in by `lab-env solve {lab} {exercise}`: the solution, not your work"
_MARKED = re.compile(r"^\s*# filled in by `lab-env solve (?P<lab>\d\d) (?P<exercise>\d+)`", re.M)


def exercise_cells(nb: nbformat.NotebookNode, name: str = "notebook") -> list[tuple[int, int]]:
    """(cell index, region within that cell) of each exercise, numbered 1, 2, ... as hints.json numbers them."""
    from lab_env.grading.generate import INSTRUCTOR_TAG, parse_regions

    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and INSTRUCTOR_TAG not in cell.get("metadata", {}).get("tags", []):
            regions = [seg for seg in parse_regions(cell.source, f"{name} cell {index}") if seg.stub]
            found += [(index, k) for k in range(len(regions))]
    return found


def solve(lab: str, exercise: int, notebook: Path | None = None) -> Path:
    """Fill exercise ``exercise`` of ``notebook`` (default: labs/NN_*.ipynb) with the solution; the notebook."""
    from lab_env.grading.assemble import find_cell_index, region_span, student_lines
    from lab_env.grading.generate import LABS_DIR, SOLUTIONS_DIR, parse_regions
    from lab_env.labs.course import lab_named, record_solved

    found = lab_named(lab)
    lab = found.number  # "1" -> "01": the record, the mark and the grader use two digits
    path = notebook or LABS_DIR / found.notebook
    if not (SOLUTIONS_DIR / found.notebook).exists():
        raise LabEnvError(
            "this copy of the course has no solutions (a release for learners)", "ask your instructor for the solution"
        )
    solution = nbformat.read(SOLUTIONS_DIR / found.notebook, as_version=4)
    exercises = exercise_cells(solution, found.notebook)
    if not 1 <= exercise <= len(exercises):
        raise LabEnvError(f"lab {lab} has exercises 1 to {len(exercises)}", f"ask for 1 to {len(exercises)}")
    index, region = exercises[exercise - 1]
    segments = parse_regions(solution.cells[index].source)
    answer = [seg for seg in segments if seg.stub][region]
    try:
        mine = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as err:
        raise LabEnvError(
            f"cannot read {path}: {err}", "name your notebook: lab-env solve NN N --notebook PATH"
        ) from None
    cells = [c for c in mine.cells if c.get("cell_type") == "code"]
    chosen = find_cell_index(cells, solution.cells[index].get("id"), student_lines(segments), set())
    where = cells[chosen] if chosen is not None else None
    source = str(where.source) if where is not None else None
    span = region_span(segments, source, region) if source is not None else None
    if source is None or where is None or span is None:
        raise LabEnvError(
            f"exercise {exercise} of lab {lab} is not in {path.name} any more",
            "copy its cell back from the lab as generated (`lab-env release` or git), then solve again",
        )
    lines = source.split("\n")
    filled = [answer.stub.indent + MARK.format(lab=lab, exercise=exercise), *answer.lines]  # type: ignore[union-attr]
    where.source = "\n".join(lines[: span[0]] + filled + lines[span[1] :])
    meta = mine.metadata.setdefault("lab_env", {})
    meta["solved"] = sorted({*meta.get("solved", []), exercise})
    nbformat.write(mine, path)
    record_solved(lab, exercise)
    return path


def solved_in(nb: nbformat.NotebookNode, lab: str) -> list[int]:
    """The exercises a handed-in notebook says were filled in by `lab-env solve`: its metadata, or
    the first line solve writes. A learner can remove both, so this informs; it proves nothing."""
    meta = nb.metadata.get("lab_env", {})
    listed = meta.get("solved", []) if isinstance(meta, dict) else []
    found = {n for n in listed if isinstance(n, int)}
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            found |= {int(m["exercise"]) for m in _MARKED.finditer(str(cell.get("source", ""))) if m["lab"] == lab}
    return sorted(found)
