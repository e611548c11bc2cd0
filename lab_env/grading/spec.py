"""A lab's grading spec, read from its solution notebook: the single source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from lab_env.errors import LabEnvError
from lab_env.grading.generate import INSTRUCTOR_TAG, SOLUTIONS_DIR


@dataclass(frozen=True)
class CheckSpec:
    name: str
    points: int
    cell_id: str
    hidden: bool
    cell: nbformat.NotebookNode  # the instructor's cell, put back before grading


@dataclass(frozen=True)
class LabSpec:
    lab: str  # "01_actors"
    solution: Path
    checks: tuple[CheckSpec, ...]
    cell_ids: tuple[str, ...]  # every cell of the solution, in order
    fixed_sources: frozenset[str] = frozenset()  # cells a learner gets verbatim (to recognise a notebook by content)

    @property
    def number(self) -> str:
        return self.lab[:2]

    @property
    def check_module(self) -> str:
        return f"lab_env.labs.lab{self.lab}.checks"

    @property
    def max_points(self) -> int:
        return sum(c.points for c in self.checks)


def load_spec(lab: str, solutions: Path = SOLUTIONS_DIR) -> LabSpec:
    """``lab`` is a number ('01') or a stem ('01_actors')."""
    matches = sorted(solutions.glob(f"{lab[:2]}_*.ipynb")) if re.fullmatch(r"\d\d(_.*)?", lab) else []
    if not matches:
        known = ", ".join(p.stem for p in sorted(solutions.glob("[0-9][0-9]_*.ipynb")))
        raise LabEnvError(f"no solution notebook for lab {lab!r}", f"use one of: {known}")
    path = matches[0]
    nb = nbformat.read(path, as_version=4)
    checks = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("lab_env")
        if meta and "check" in meta:
            checks.append(
                CheckSpec(
                    meta["check"],
                    int(meta["points"]),
                    cell["id"],
                    INSTRUCTOR_TAG in cell.metadata.get("tags", []),
                    cell,
                )
            )
    fixed = frozenset(c.source.strip() for c in nb.cells if c.source.strip() and "BEGIN SOLUTION" not in c.source)
    return LabSpec(path.stem, path, tuple(checks), tuple(c["id"] for c in nb.cells), fixed)
