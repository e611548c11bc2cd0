"""Build the notebook that is graded: the instructor's solution with only the
learner's answers put in.

Every cell comes from the solution notebook. In each exercise cell (a cell
with ``### BEGIN SOLUTION`` regions) each region holds what the learner wrote
in its place; other edits in that cell are undone, except added import lines.
Cells the learner added are not run. Check cells are not run in the kernel at
all: the grader evaluates them in its own process (worker.py). Demonstration
cells (``lab_env: {demo: true}``) are not run either: they teach by running in
the learner's kernel and decide no verdict.

Each answer is screened (screen.py) first. An answer that reaches for the
kernel, the checks or the interpreter's internals is graded as not done, and
the feedback says why.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field

import nbformat

from lab_env.grading.generate import Segment, parse_regions
from lab_env.grading.screen import kernel_python, screen
from lab_env.grading.spec import LabSpec

ROLE = "lab_env_grading"  # cell metadata the worker reads: {"role", "stub_source", "label"}
FIXED = "fixed"
DEMO = "demo"  # a cell the grader does not run (metadata lab_env.demo in the solution)
_HARMLESS = re.compile(r"^\s*(#.*|(import [\w., ]+|from [\w.]+ import [\w., ()]+)\s*(#.*)?)?$")


@dataclass
class Assembly:
    notebook: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)
    hints: dict[int, tuple[int, int]] = field(default_factory=dict)  # exercise -> (deepest level, levels) shown


def assemble(submission: nbformat.NotebookNode, spec: LabSpec) -> Assembly:
    solution = nbformat.read(spec.solution, as_version=4)
    learner_cells = [c for c in submission.cells if c.get("cell_type") == "code"]
    used: set[int] = set()
    notes: list[str] = []
    cells = []
    for index, cell in enumerate(solution.cells):
        fresh = copy.deepcopy(cell)
        if fresh.cell_type == "code":
            fresh.outputs, fresh.execution_count = [], None
            fresh.metadata.pop("execution", None)
            meta = fresh.metadata.get("lab_env", {})
            if "check" in meta:
                fresh.metadata[ROLE] = {"role": "check"}
            elif meta.get("demo"):
                # A demonstration: it teaches by running, earns no points, and defines nothing a later
                # cell uses (tests/grading/test_grading_assembly.py holds the solutions to that).
                fresh.metadata[ROLE] = {"role": DEMO}
            elif "### BEGIN SOLUTION" in fresh.source:
                segments = parse_regions(fresh.source, f"{spec.lab} cell {index}")
                label = _label(fresh.source)
                learner = find_cell(learner_cells, fresh.get("id"), student_lines(segments), used)
                lines, cell_notes = _merge(segments, learner, label)
                lines, screened = _screened(lines, segments, label)
                replace = meta.get("grading_replace", {})
                fresh.source = _join(lines, replace)
                fresh.metadata[ROLE] = {
                    "role": "exercise",
                    "label": label,
                    "stub_source": _join([(ln, FIXED) for ln in student_lines(segments)], replace),
                }
                notes += cell_notes + screened
            else:
                fresh.metadata[ROLE] = {"role": FIXED}
        cells.append(fresh)
    solution_ids = {c.get("id") for c in solution.cells}
    notes += _tampering(submission, solution, spec)
    added = [
        c
        for i, c in enumerate(learner_cells)
        if i not in used
        and c.get("id") not in solution_ids
        and str(c.get("source", "")).strip()
        and str(c.get("source", "")).strip() not in spec.fixed_sources
    ]
    if added:
        notes.append(
            f"{len(added)} code cell(s) you added were not run: the grader runs the lab's own cells with "
            "your answers in the exercise regions (put helper code inside an exercise region)"
        )
    from lab_env.labs.solve import solved_in

    if filled := solved_in(submission, spec.number):
        notes.append(
            f"exercise {', '.join(map(str, filled))} filled in with the solution (`lab-env solve`): "
            "the checks that pass on it do not show your own work there"
        )
    graded = copy.deepcopy(solution)
    graded.cells = cells
    from lab_env.labs.hints import asked_for

    return Assembly(graded, notes, asked_for(submission, spec.number))


def _tampering(submission: nbformat.NotebookNode, solution: nbformat.NotebookNode, spec: LabSpec) -> list[str]:
    """What the learner changed that the grader ignores anyway, said in the feedback."""
    notes = []
    by_id = {c.get("id"): c for c in submission.cells}
    visible = [c for c in spec.checks if not c.hidden]
    edited = [
        c.name for c in visible if c.cell_id in by_id and by_id[c.cell_id].source.strip() != c.cell.source.strip()
    ]
    texts = {str(c.get("source", "")).strip() for c in submission.cells}
    missing = [c.name for c in visible if c.cell_id not in by_id and c.cell.source.strip() not in texts]
    if edited:
        notes.append(f"check cells you edited were run as the lab wrote them: {', '.join(edited)}")
    if missing:
        notes.append(f"check cells missing from your notebook were run all the same: {', '.join(missing)}")
    known = sum(1 for c in submission.cells if c.get("id") in {s.get("id") for s in solution.cells})
    if known < len(submission.cells) / 2:
        notes.append("most cell ids differ from the lab's: your exercise cells were found by their content")
    return notes


Line = tuple[str, object]  # (text, origin): FIXED, "extra" (an added import) or a region number


def student_lines(segments: list[Segment]) -> list[str]:
    """The student's version of the cell: each region as its stub."""
    return [line for seg in segments for line in (seg.stub.lines() if seg.stub else seg.lines)]


def _template(segments: list[Segment]) -> tuple[list[Line], list[tuple[int, int]]]:
    lines: list[Line] = []
    spans = []
    region = 0
    for seg in segments:
        if seg.stub is None:
            lines += [(ln, FIXED) for ln in seg.lines]
        else:
            start = len(lines)
            lines += [(ln, region) for ln in seg.stub.lines()]
            spans.append((start, len(lines)))
            region += 1
    return lines, spans


def _aligned(template: list[Line], spans: list[tuple[int, int]], mine: list[str]):
    """The learner's lines against the template, block by block: (tag, i1, i2, j1, j2, regions), where
    ``regions`` are the exercise regions a changed block answers (none for an equal block)."""
    matcher = difflib.SequenceMatcher(None, [t for t, _ in template], mine, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        regions = (
            []
            if tag == "equal"
            else sorted(
                {o for _, o in template[i1:i2] if isinstance(o, int)}
                | {r for r, (a, b) in enumerate(spans) if a <= i1 <= b and i1 == i2}
            )
        )
        yield tag, i1, i2, j1, j2, regions


def region_span(segments: list[Segment], learner: str, region: int) -> tuple[int, int] | None:
    """Where exercise region ``region`` of a cell is in the learner's version of it: the slice of its
    lines (``learner.split("\n")``) that is the stub or the learner's answer, or None if it is gone."""
    template, spans = _template(segments)
    lines: list[int] = []
    at: int | None = None  # where an answer that was deleted outright would go
    for tag, i1, i2, j1, j2, regions in _aligned(template, spans, learner.split("\n")):
        if tag == "equal":
            lines += [j1 + k for k in range(i2 - i1) if template[i1 + k][1] == region]
        elif regions and regions[0] == region:
            lines += range(j1, j2)
            at = j1 if at is None else at
    if lines:
        return min(lines), max(lines) + 1
    return (at, at) if at is not None else None


def find_cell(
    cells: list[nbformat.NotebookNode], cell_id: str | None, template: list[str], used: set[int]
) -> str | None:
    """The learner's version of an exercise cell: same id (the last such cell), else the most similar cell."""
    index = find_cell_index(cells, cell_id, template, used)
    return None if index is None else str(cells[index].source)


def find_cell_index(
    cells: list[nbformat.NotebookNode], cell_id: str | None, template: list[str], used: set[int]
) -> int | None:
    """Which of ``cells`` is the learner's version of an exercise cell (marked used), or None."""
    same = [i for i, c in enumerate(cells) if cell_id and c.get("id") == cell_id and i not in used]
    if same:
        used.add(same[-1])
        return same[-1]
    best, best_ratio = None, 0.5
    for i, c in enumerate(cells):
        if i in used:
            continue
        ratio = difflib.SequenceMatcher(None, template, str(c.source).split("\n"), autojunk=False).ratio()
        if ratio > best_ratio:
            best, best_ratio = i, ratio
    if best is not None:
        used.add(best)
    return best


def _merge(segments: list[Segment], learner: str | None, label: str) -> tuple[list[Line], list[str]]:
    """The template with the learner's answers in its regions; other edits undone."""
    template, spans = _template(segments)
    if learner is None:
        return template, [f"{label}: not found in your notebook, graded as not done"]
    mine = learner.split("\n")
    out: list[Line] = []
    undone = []
    for tag, i1, i2, j1, j2, regions in _aligned(template, spans, mine):
        if tag == "equal":
            out += template[i1:i2]
            continue
        if regions:
            out += [(ln, regions[0]) for ln in mine[j1:j2]]
        elif tag == "insert" and all(_HARMLESS.match(ln) for ln in mine[j1:j2]):
            out += [(ln, "extra") for ln in mine[j1:j2]]
        else:
            out += template[i1:i2]
            changed = [ln.strip() for ln in mine[j1:j2] if ln.strip()] or [t.strip() for t, _ in template[i1:i2]]
            undone.append(changed[0][:60])
    if template and template[0][0].startswith("%%") and (not out or out[0][0] != template[0][0]):
        out = [template[0], *[ln for ln in out if ln[0] != template[0][0]]]
        undone.append(template[0][0])
    notes = (
        [f"{label}: your changes outside the exercise regions were undone ({', '.join(map(repr, undone[:3]))})"]
        if undone
        else []
    )
    return out, notes


def _screened(lines: list[Line], segments: list[Segment], label: str) -> tuple[list[Line], list[str]]:
    """Screen the learner's lines; flagged regions become their stubs again, flagged imports go."""
    source = "\n".join(t for t, _ in lines)
    first = lines[0][0] if lines else ""
    if first.startswith("%%resource_file"):
        return lines, []  # YAML: nothing runs
    if first.startswith("%%"):  # %%app_file: the body runs in an app process
        findings = [
            f.__class__(f.line + 1, f.reason) for f in screen("\n".join(t for t, _ in lines[1:]), in_kernel=False)
        ]
    else:
        findings = screen(kernel_python(source), in_kernel=True)
    flagged: dict[object, str] = {}
    for f in findings:
        origin = lines[f.line - 1][1] if 0 < f.line <= len(lines) else None
        if origin is not None and origin != FIXED:
            flagged.setdefault(origin, f.reason)
    if not flagged:
        return lines, []
    stubs = [seg.stub for seg in segments if seg.stub]
    out: list[Line] = []
    for text, origin in lines:
        if origin not in flagged:
            out.append((text, origin))
        elif isinstance(origin, int) and not any(o == origin for _, o in out):
            out += [(ln, origin) for ln in stubs[origin].lines()]
    notes = [
        f"{label}: an answer {reason}, which graded code may not do; it was graded as not done"
        for reason in dict.fromkeys(flagged.values())
    ]
    return out, notes


def _join(lines: list[Line], replace: dict[str, str]) -> str:
    # Sizes the lab declares for grading replace the instructor's own lines only.
    return "\n".join(replace.get(text, text) if origin == FIXED else text for text, origin in lines)


def _label(source: str) -> str:
    first = next((ln.strip() for ln in source.split("\n") if ln.strip()), "")
    return f"the cell starting {first[:50]!r}"
