"""Where a class gets stuck, from graded folders, and the gradebook for a learning platform.

    lab-env class-report grades-01 grades-03 ...

Reads what `lab-env grade` wrote in each folder (gradebook.csv, hints.csv,
logs/) and writes, beside the first folder (or into --out):

- class-report.md, .png, .ipynb and .html (the notebook rendered): per lab, how
  many learners were graded and their scores (mean and distribution); per
  check, the share of graded learners who passed it, lowest first; where
  learners stop (the first check each one fails); per hint, how many learners
  asked for each level; the slowest cells of a graded run (median over the
  class, from the workers' logs);
- gradebook-canvas.csv and gradebook-moodle.csv: one row per learner, one
  column per lab, in the layouts Canvas and Moodle import (``EXPORTS``).

Learners not graded (no notebook, a corrupt one) are counted apart: they tell
nothing about the checks. In the exports they get the total the gradebook
gives them (0).
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lab_env.errors import LabEnvError
from lab_env.grading.batch import SHARED_RUN

FIXED = ("learner", "lab", "status")
TAIL = ("hint_deduction", "total", "max", "reason")


@dataclass
class LabView:
    lab: str
    graded: int
    not_graded: int
    mean: float
    max_points: int
    passed: dict[str, float]  # check -> share of graded learners who passed it (earned its points)
    hints: dict[str, Counter[int]] = field(default_factory=dict)  # hint call -> learners per deepest level
    totals: dict[str, int] = field(default_factory=dict)  # learner -> total (0 when not graded)
    scores: list[int] = field(default_factory=list)  # the totals of graded learners
    stops: Counter[str] = field(default_factory=Counter)  # first check failed (FINISHED: none) -> learners
    cells: dict[int, list[float]] = field(default_factory=dict)  # code cell index -> seconds, one per graded run


FINISHED = "(passed every check)"
# A line of a worker's log (worker.py's _log): "  36.66s  cell 1 ok", "   0.40s  check base_agent".
_TIMED = re.compile(r"^\s*(?P<seconds>\d+(?:\.\d+)?)s  cell (?P<cell>\d+) ")


def read_folder(folder: Path) -> LabView:
    gradebook = folder / "gradebook.csv"
    if not gradebook.exists():
        raise LabEnvError(f"{folder} has no gradebook.csv", "pass the folders `lab-env grade` wrote (grades-NN)")
    with open(gradebook, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise LabEnvError(f"{gradebook} lists no learner", "grade the submissions first")
    from lab_env.grading.spec import load_spec

    points = {c.name: c.points for c in load_spec(rows[0]["lab"]).checks}  # a check passed earns all its points
    checks = [c for c in rows[0] if c not in FIXED and c not in TAIL]
    graded = [r for r in rows if r["status"] == "graded"]
    passed = {c: sum(1 for r in graded if int(r[c]) == points[c]) / len(graded) if graded else 0.0 for c in checks}
    view = LabView(
        rows[0]["lab"],
        len(graded),
        len(rows) - len(graded),
        sum(int(r["total"]) for r in graded) / len(graded) if graded else 0.0,
        int(rows[0]["max"]),
        passed,
    )
    view.totals = {r["learner"]: int(r["total"]) for r in rows}
    view.scores = sorted(int(r["total"]) for r in graded)
    # The gradebook's check columns are in the notebook's order: the first failed is where a learner stopped.
    view.stops = Counter(next((c for c in checks if int(r[c]) != points[c]), FINISHED) for r in graded)
    for r in graded:
        for cell, seconds in cell_times(folder / "logs" / f"{r['learner']}.log").items():
            view.cells.setdefault(cell, []).append(seconds)
    hints = folder / "hints.csv"
    if hints.exists():
        with open(hints, newline="") as f:
            for row in csv.DictReader(f):
                view.hints.setdefault(row["hint"], Counter())[int(row["level"])] += 1
    return view


def cell_times(log: Path) -> dict[int, float]:
    """Seconds per code cell (its index in the solution notebook) in one graded run's worker log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    if text.startswith(SHARED_RUN):  # another learner's run, already counted under their name
        return {}
    times: dict[int, float] = {}
    for m in map(_TIMED.match, text.splitlines()):
        if m:  # a cell run again after the kernel died: its last run counts
            times[int(m["cell"])] = float(m["seconds"])
    return times


@cache
def _first_lines(lab: str) -> tuple[str, ...]:
    """The first non-empty line of each cell of ``lab``'s solution (graded runs number cells as it does)."""
    import nbformat

    from lab_env.grading.spec import load_spec

    cells = nbformat.read(load_spec(lab).solution, as_version=4).cells
    return tuple(next((ln.strip() for ln in c.source.splitlines() if ln.strip()), "") for c in cells)


def _cell_label(lab: str, index: int) -> str:
    lines = _first_lines(lab)
    first = lines[index] if index < len(lines) else ""
    return f"cell {index}: `{first[:60]}`" if first else f"cell {index}"


def _distribution(scores: list[int], top: int) -> list[tuple[str, int]]:
    """Learners per fifth of the points (fewer bands when there are fewer than five points), then the full score."""
    edges = sorted({i * top // 5 for i in range(5)} | {top})
    bands = list(zip(edges, [e - 1 for e in edges[1:]], strict=False))
    rows = [(f"{lo}-{hi}" if hi > lo else f"{lo}", sum(1 for s in scores if lo <= s <= hi)) for lo, hi in bands]
    return [*rows, (f"{top} (full)", sum(1 for s in scores if s >= top))]


def markdown_sections(v: LabView, slowest: int = 5) -> list[str]:
    """The report's section for one lab, as markdown lines."""
    lines = [
        f"## Lab {v.lab}",
        "",
        f"{v.graded} learners graded, mean {v.mean:.1f} of {v.max_points} points"
        + (f", median {statistics.median(v.scores):g}" if v.scores else "")
        + (f"; {v.not_graded} not graded (see the gradebook's reason column)" if v.not_graded else "")
        + ".",
        "",
        "| check | passed by |",
        "| --- | ---: |",
        *(f"| {c} | {share:.0%} |" for c, share in sorted(v.passed.items(), key=lambda kv: kv[1])),
        "",
        "| score | learners |",
        "| --- | ---: |",
        *(f"| {band} | {n} |" for band, n in _distribution(v.scores, v.max_points)),
        "",
        "| where learners stop: the first check they fail | learners |",
        "| --- | ---: |",
        *(f"| {c} | {n} |" for c, n in v.stops.most_common()),
        "",
    ]
    if v.hints:
        lines += ["| hint | learners who asked, by deepest level |", "| --- | --- |"]
        for call, levels in sorted(v.hints.items()):
            asked = ", ".join(f"level {lv}: {n}" for lv, n in sorted(levels.items()))
            lines.append(f"| `{call}` | {asked} |")
        lines.append("")
    if v.cells:
        ranked = sorted(v.cells.items(), key=lambda kv: -statistics.median(kv[1]))[:slowest]
        lines += ["| slowest cells of a graded run | median s | max s |", "| --- | ---: | ---: |"]
        for cell, times in ranked:
            label = _cell_label(v.lab, cell).replace("|", "/")
            lines.append(f"| {label} | {statistics.median(times):.1f} | {max(times):.1f} |")
        lines.append("")
    return lines


def report(folders: list[Path], out: Path) -> tuple[Path, Path]:
    """class-report.md, .png, .ipynb and .html, and the two gradebook exports, in ``out``;
    returns the markdown and the picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    views = [read_folder(f) for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Where the class gets stuck", ""]
    for v in views:
        lines += markdown_sections(v)
    markdown = out / "class-report.md"
    markdown.write_text("\n".join(lines))

    bars = [(f"{v.lab} {c}", share) for v in views for c, share in v.passed.items()]
    fig, (ax, scores) = plt.subplots(
        2, 1, figsize=(8, 0.3 * len(bars) + 4.2), gridspec_kw={"height_ratios": [0.3 * len(bars) + 1.2, 3]}
    )
    colors = ["#cf222e" if share < 0.5 else "#1a7f37" for _, share in bars]
    ax.barh([name for name, _ in bars], [100 * share for _, share in bars], color=colors)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of graded learners who passed")
    ax.set_title("Pass rate per check (red: under half the class)")
    for v in views:
        if v.scores and v.max_points:
            scores.hist(
                [100 * s / v.max_points for s in v.scores], bins=10, range=(0, 100), alpha=0.6, label=f"lab {v.lab}"
            )
    scores.set_xlabel("score, % of the lab's points")
    scores.set_ylabel("learners")
    scores.yaxis.set_major_locator(MaxNLocator(integer=True))
    scores.set_title("Score distribution")
    if views:
        scores.legend()
    fig.tight_layout()
    picture = out / "class-report.png"
    fig.savefig(picture, dpi=100)
    plt.close(fig)
    _notebook_and_html(lines, picture, out)
    write_exports(views, out)
    return markdown, picture


def _notebook_and_html(lines: list[str], picture: Path, out: Path) -> None:
    """The same report as a notebook (one markdown cell per lab, the picture as an output) and as HTML."""
    import base64

    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    sections = "\n".join(lines).split("\n## ")
    nb.cells = [nbformat.v4.new_markdown_cell(sections[0])]
    nb.cells += [nbformat.v4.new_markdown_cell("## " + section) for section in sections[1:]]
    figure = nbformat.v4.new_code_cell("# the picture: pass rate per check, and the score distribution")
    figure.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(picture.read_bytes()).decode()}, metadata={}
        )
    ]
    nb.cells.append(figure)
    nbformat.write(nb, out / "class-report.ipynb")
    html, _ = HTMLExporter(exclude_input=True).from_notebook_node(nb)
    (out / "class-report.html").write_text(html)


# -- the gradebook for a learning platform ---------------------------------------------------------

# Canvas's gradebook import: its export's five identity columns first, then one column per assignment;
# rows are matched on SIS Login ID (the learner's name here, as handed in), the others may stay empty.
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
# Moodle's "Import grades: CSV file": a header row, a column the import maps to a user field (here
# the username), and one column per grade item, mapped to it on the import page.
MOODLE_IDENTITY = ("Username",)
EXPORTS = {"canvas": "gradebook-canvas.csv", "moodle": "gradebook-moodle.csv"}


def _assignment(v: LabView) -> str:
    from lab_env.labs.course import lab_named

    return f"Lab {v.lab[:2]}: {lab_named(v.lab[:2]).title}"


def write_exports(views: list[LabView], out: Path) -> dict[str, Path]:
    """gradebook-canvas.csv and gradebook-moodle.csv: every learner of any lab, a column per lab
    (empty where the learner has no row for that lab)."""
    learners = sorted({name for v in views for name in v.totals})
    assignments = [_assignment(v) for v in views]

    def score(v: LabView, learner: str) -> str:
        return str(v.totals[learner]) if learner in v.totals else ""

    paths = {kind: out / name for kind, name in EXPORTS.items()}
    with open(paths["canvas"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CANVAS_IDENTITY, *assignments])
        writer.writerow(["    Points Possible", "", "", "", "", *(v.max_points for v in views)])
        for learner in learners:
            writer.writerow([learner, "", "", learner, "", *(score(v, learner) for v in views)])
    with open(paths["moodle"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*MOODLE_IDENTITY, *assignments])
        for learner in learners:
            writer.writerow([learner, *(score(v, learner) for v in views)])
    return paths
