"""Where a class gets stuck: pass rate per check and hints asked for, from graded folders.

    lab-env class-report grades-01 grades-03 ...

Reads what `lab-env grade` wrote in each folder (gradebook.csv, hints.csv) and
writes class-report.md and class-report.png beside the first folder (or into
--out): per lab, how many learners were graded and their mean score; per check,
the share of graded learners who passed it, lowest first; per hint, how many
learners asked for each level. Learners not graded (no notebook, a corrupt
one) are counted apart: they tell nothing about the checks.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.errors import LabEnvError

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
    hints = folder / "hints.csv"
    if hints.exists():
        with open(hints, newline="") as f:
            for row in csv.DictReader(f):
                view.hints.setdefault(row["hint"], Counter())[int(row["level"])] += 1
    return view


def report(folders: list[Path], out: Path) -> tuple[Path, Path]:
    """class-report.md and class-report.png in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = [read_folder(f) for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Where the class gets stuck", ""]
    for v in views:
        lines += [
            f"## Lab {v.lab}",
            "",
            f"{v.graded} learners graded, mean {v.mean:.1f} of {v.max_points} points"
            + (f"; {v.not_graded} not graded (see the gradebook's reason column)" if v.not_graded else "")
            + ".",
            "",
            "| check | passed by |",
            "| --- | ---: |",
            *(f"| {c} | {share:.0%} |" for c, share in sorted(v.passed.items(), key=lambda kv: kv[1])),
            "",
        ]
        if v.hints:
            lines += ["| hint | learners who asked, by deepest level |", "| --- | --- |"]
            for call, levels in sorted(v.hints.items()):
                asked = ", ".join(f"level {lv}: {n}" for lv, n in sorted(levels.items()))
                lines.append(f"| `{call}` | {asked} |")
            lines.append("")
    markdown = out / "class-report.md"
    markdown.write_text("\n".join(lines))

    bars = [(f"{v.lab} {c}", share) for v in views for c, share in v.passed.items()]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(bars) + 1.2))
    colors = ["#cf222e" if share < 0.5 else "#1a7f37" for _, share in bars]
    ax.barh([name for name, _ in bars], [100 * share for _, share in bars], color=colors)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of graded learners who passed")
    ax.set_title("Pass rate per check (red: under half the class)")
    fig.tight_layout()
    picture = out / "class-report.png"
    fig.savefig(picture, dpi=100)
    plt.close(fig)
    return markdown, picture
