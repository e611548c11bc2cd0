"""Generate student notebooks (labs/) from instructor notebooks (solutions/).

In a solution notebook:

- code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub
  (``# YOUR CODE HERE`` and ``raise NotImplementedError(...)``) at the same
  indentation; the ``### HINT: ...`` lines right after BEGIN are the
  exercise's hints, in levels: the stub shows the first, and ``hint(lab, n)``
  in the notebook (``lab-env hint``) reveals the next one (labs/hints.json);
- markdown between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  is dropped;
- cells tagged ``instructor`` (hidden checks, notes) are removed;
- every output and execution count is cleared.

``lab-env build-labs`` writes labs/; ``--check`` fails if labs/ is stale.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from lab_env.core.paths import REPO_ROOT
from lab_env.errors import LabEnvError
from lab_env.labs.hints import HINTS_NAME, hint_call

SOLUTIONS_DIR = REPO_ROOT / "solutions"
LABS_DIR = REPO_ROOT / "labs"
INSTRUCTOR_TAG = "instructor"

# Every stub raises NotImplementedError with this message (notebooks show it in one line: errors.py).
STUB_MESSAGE = "exercise not done yet"
_BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*### END SOLUTION\s*$")
_HINT = re.compile(r"^\s*### HINT:\s*(?P<hint>.+?)\s*$")
_MD_SOLUTION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->\n?", re.S)


@dataclass
class Stub:
    indent: str
    hints: list[str] = field(default_factory=list)  # levels: the first is shown, the rest on request

    @property
    def hint(self) -> str | None:
        return self.hints[0] if self.hints else None

    def lines(self, more: str | None = None) -> list[str]:
        """The stub; ``more`` is the call that reveals the next hint (shown when there is one)."""
        out = [f"{self.indent}# YOUR CODE HERE"]
        if self.hint:
            out.append(f"{self.indent}# Hint: {self.hint}")
        if more and len(self.hints) > 1:
            out.append(f"{self.indent}# Stuck? {more} shows the next hint ({len(self.hints) - 1} more).")
        message = STUB_MESSAGE + (f": {self.hint}" if self.hint else "")
        out.append(f"{self.indent}raise NotImplementedError({message!r})")
        return out


@dataclass
class Segment:
    """A run of a solution cell's lines: fixed code, or one exercise region
    (``stub`` set: the solution ``lines`` a learner replaces)."""

    lines: list[str]
    stub: Stub | None = None

    @property
    def is_region(self) -> bool:
        return self.stub is not None


def parse_regions(source: str, where: str = "cell") -> list[Segment]:
    """Split a solution cell into fixed segments and exercise regions (markers dropped)."""
    segments: list[Segment] = [Segment([])]
    region: Segment | None = None
    fresh = False  # HINT lines count only right after BEGIN
    for number, line in enumerate(source.split("\n"), 1):
        if region is None:
            begin = _BEGIN.match(line)
            if begin:
                region, fresh = Segment([], Stub(begin["indent"])), True
                continue
            if _END.match(line):
                raise LabEnvError(f"{where} line {number}: END SOLUTION without BEGIN", "pair the markers")
            segments[-1].lines.append(line)
            continue
        if _BEGIN.match(line):
            raise LabEnvError(
                f"{where} line {number}: nested BEGIN SOLUTION", "close the first region before opening another"
            )
        hint = _HINT.match(line) if fresh else None
        fresh = bool(hint)
        if hint:
            region.stub.hints.append(hint["hint"])  # type: ignore[union-attr]
        elif _END.match(line):
            segments += [region, Segment([])]
            region = None
        else:
            region.lines.append(line)
    if region is not None:
        raise LabEnvError(f"{where}: BEGIN SOLUTION without END SOLUTION", "close the region with ### END SOLUTION")
    return [s for s in segments if s.lines or s.is_region]


def strip_solutions(
    source: str,
    where: str = "cell",
    keep: frozenset[int] = frozenset(),
    more: Callable[[int], str] | None = None,
) -> str:
    """Replace every solution region of a code cell with its stub.

    Regions are numbered from 0 in order; those in ``keep`` stay solved (for
    building partly solved notebooks, e.g. grading fixtures). ``more(n)`` is the
    call that reveals region n's next hint.
    """
    out: list[str] = []
    region = -1
    for segment in parse_regions(source, where):
        if segment.stub is None:
            out += segment.lines
            continue
        region += 1
        out += segment.lines if region in keep else segment.stub.lines(more(region) if more else None)
    return "\n".join(out)


def exercise_hints(nb: nbformat.NotebookNode, name: str = "notebook") -> list[list[str]]:
    """The hint levels of each exercise region of a solution notebook, numbered 1, 2, ... in order."""
    found: list[list[str]] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and INSTRUCTOR_TAG not in cell.get("metadata", {}).get("tags", []):
            found += [seg.stub.hints for seg in parse_regions(cell.source, f"{name} cell {index}") if seg.stub]
    return found


def _numbered(lab: str, before: int) -> Callable[[int], str]:
    """The hint call of a cell's region n, after ``before`` exercises in earlier cells."""
    return lambda region: hint_call(lab, before + region + 1)


def hints_file(solutions: Path = SOLUTIONS_DIR) -> str:
    """labs/hints.json: {lab: {exercise: [levels]}} for every exercise with a hint."""
    table: dict[str, dict[str, list[str]]] = {}
    for source in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        levels = exercise_hints(nb, source.name)
        table[source.name[:2]] = {str(n): h for n, h in enumerate(levels, 1) if h}
    return json.dumps(table, indent=1, ensure_ascii=False) + "\n"


def student_version(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    lab = copy.deepcopy(nb)
    cells = []
    number = name[:2]
    exercises = 0  # regions so far: exercise n of the lab is its n-th region (hints.json's numbering)
    for index, cell in enumerate(lab.cells):
        if INSTRUCTOR_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            first = exercises
            exercises += sum(1 for seg in parse_regions(cell.source, f"{name} cell {index}") if seg.stub)
            cell.source = strip_solutions(cell.source, f"{name} cell {index}", more=_numbered(number, first))
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = _MD_SOLUTION.sub("", cell.source)
        cells.append(cell)  # cell ids are kept: the grader maps cells by id
    lab.cells = cells
    lab.metadata.pop("widgets", None)
    # Tells the grader which lab a handed-in notebook is.
    lab.metadata["lab_env"] = {"lab": name.removesuffix(".ipynb")}
    return lab


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def build_labs(solutions: Path = SOLUTIONS_DIR, labs: Path = LABS_DIR, check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) labs/NN_x.ipynb for each solution.

    Returns the lab paths written, or in check mode the stale ones.
    """
    results: list[Path] = []

    def put(target: Path, text: str) -> None:
        """Write ``target`` (or in check mode, note it when it differs); either way it is in the results."""
        if check:
            if not target.exists() or target.read_text() != text:
                results.append(target)
        else:
            labs.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            results.append(target)

    expected = set()
    for source in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        expected.add(source.name)
        put(labs / source.name, render(student_version(nb, source.name)))
    put(labs / HINTS_NAME, hints_file(solutions))
    if labs == LABS_DIR:  # the course overview lists the real labs/ only
        from lab_env.labs.course import OVERVIEW_NAME, overview_notebook

        put(labs / OVERVIEW_NAME, render(overview_notebook()))
    if check and labs.exists():
        results += [p for p in sorted(labs.glob("[0-9][0-9]_*.ipynb")) if p.name not in expected]
    return results
