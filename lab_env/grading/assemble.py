"""Build the notebook that is graded from a learner's submission.

As nbgrader's OverwriteCells does: every check cell is replaced by the
instructor's version (matched by cell id), a deleted one is put back where it
belongs, and hidden instructor checks are added. Each check cell also
re-imports the check module, so rebinding `check` in a learner's cell does
not help. Check cells lose the nbval output comparison: the grade comes from
whether the check raised, not from what the learner's copy last printed.
"""

from __future__ import annotations

import copy

import nbformat

from .spec import LabSpec

GRADED_TAG = "graded-check"


def graded_notebook(submission: nbformat.NotebookNode, spec: LabSpec) -> nbformat.NotebookNode:
    nb = copy.deepcopy(submission)
    by_id = {c.get("id"): i for i, c in enumerate(nb.cells)}
    order = {cell_id: i for i, cell_id in enumerate(spec.cell_ids)}
    check_ids = {c.cell_id for c in spec.checks}

    for cell in nb.cells:
        # A learner's own cell that claims a check's metadata (copied, say) is no check.
        if cell.get("id") not in check_ids:
            cell.get("metadata", {}).pop("lab_env", None)
        # Outputs are not compared when grading: a learner's copy may hold any.
        tags = cell.get("metadata", {}).get("tags", [])
        if "nbval-check-output" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "nbval-check-output"]

    for check in spec.checks:
        fresh = _instructor_cell(check.cell, spec)
        if check.cell_id in by_id:
            nb.cells[by_id[check.cell_id]] = fresh
        else:
            nb.cells.insert(_position(nb, check.cell_id, order), fresh)
        by_id = {c.get("id"): i for i, c in enumerate(nb.cells)}
    return nb


def _instructor_cell(cell: nbformat.NotebookNode, spec: LabSpec) -> nbformat.NotebookNode:
    fresh = copy.deepcopy(cell)
    fresh.source = f"from {spec.check_module.rsplit('.', 1)[0]} import {spec.check_module.rsplit('.', 1)[1]} as check\n{cell.source}"
    fresh.outputs, fresh.execution_count = [], None
    tags = [t for t in fresh.metadata.get("tags", []) if t != "nbval-check-output"]
    fresh.metadata["tags"] = [*tags, GRADED_TAG]
    return fresh


def _position(nb: nbformat.NotebookNode, cell_id: str, order: dict[str, int]) -> int:
    """Index just after the last cell of the learner's notebook that precedes
    ``cell_id`` in the solution (the end if none does)."""
    target = order[cell_id]
    best = len(nb.cells)
    for i, cell in enumerate(nb.cells):
        pos = order.get(cell.get("id"))
        if pos is not None and pos < target:
            best = i + 1
    return best
