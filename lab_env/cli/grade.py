"""`lab-env grade`: grade a folder of learners' notebooks."""

from __future__ import annotations

import argparse

from lab_env.errors import LabEnvError


def cmd_grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab_env.grading import grade_folder
    from lab_env.grading.report import summary_table
    from lab_env.grading.spec import load_spec

    lab = args.lab or _guess_lab(Path(args.submissions))
    results, out = grade_folder(
        Path(args.submissions),
        lab,
        Path(args.out) if args.out else None,
        jobs=args.jobs,
        cell_timeout=args.cell_timeout,
        timeout=args.timeout,
        regrade_identical=args.regrade_identical,
        deduct_last_hint=args.deduct_last_hint,
        sandbox=args.sandbox,
    )
    print(summary_table(results, load_spec(lab)))
    print(f"gradebook: {out / 'gradebook.csv'}; JUnit: {out / 'junit.xml'}; feedback: {out / 'feedback'}/")
    return 0


def cmd_class_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab_env.grading.class_view import EXPORTS, report

    folders = [Path(f) for f in args.folders]
    out = Path(args.out) if args.out else folders[0].parent
    markdown, picture = report(folders, out)
    print(markdown.read_text())
    written = [markdown, picture, *(out / f"class-report.{ext}" for ext in ("ipynb", "html"))]
    print(f"written: {', '.join(map(str, written))}")
    print(f"for a learning platform's gradebook import: {', '.join(str(out / n) for n in EXPORTS.values())}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab_env.grading.release import answers_in, release

    out = Path(args.out)
    kept = release(out)
    print(f"wrote {len(kept)} files to {out} (no solutions/, tests/, bench/, .ci/); see {out / 'RELEASE.md'}")
    for lab, number, name in answers_in(out):
        print(f'  note: the answer to hint("{lab}", {number}) is also in {name} (a reference implementation)')
    return 0


def _guess_lab(folder) -> str:
    import re

    match = re.search(r"(\d\d)", folder.resolve().name)
    if not match:
        raise LabEnvError(f"cannot tell which lab {folder} holds", "pass --lab NN")
    return match[1]


def _points(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} points: a deduction is 0 or more")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("grade", help="grade a folder of learners' notebooks (gradebook, JUnit, feedback)")
    s.add_argument("submissions", help="folder: one <learner>.ipynb or <learner>/ folder each")
    s.add_argument("--lab", help="lab number, e.g. 01 (default: from the folder name)")
    s.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    # Safety nets against endless loops, never what decides a right answer.
    s.add_argument("--timeout", type=int, default=1800, help="seconds per notebook (a safety net)")
    s.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell (a safety net)")
    s.add_argument("--out", help="output folder (default: grades-<lab> next to the submissions)")
    s.add_argument(
        "--regrade-identical",
        action="store_true",
        help="run every submission, even where the graded notebook is identical to another's",
    )
    s.add_argument(
        "--deduct-last-hint",
        type=_points,
        default=0,
        metavar="POINTS",
        help="points off per exercise whose last hint level (the one that may show code) the notebook shows",
    )
    s.add_argument(
        "--sandbox",
        choices=("auto", "on", "off"),
        default="auto",
        help="run each submission's kernel and apps in a container of its own (auto: where a Docker engine "
        "answers on this machine and the grader is root; off: as the grader's user)",
    )
    s.set_defaults(fn=cmd_grade)

    s = sub.add_parser("release", help="a copy of the course for learners: everything but the solutions")
    s.add_argument("out", help="a new folder, outside this repository")
    s.set_defaults(fn=cmd_release)

    s = sub.add_parser(
        "class-report",
        help="where a class gets stuck (pass rates, scores, where learners stop, hints, slow cells); LMS gradebooks",
    )
    s.add_argument("folders", nargs="+", help="folders `lab-env grade` wrote (grades-NN)")
    s.add_argument("--out", help="output folder (default: beside the first folder)")
    s.set_defaults(fn=cmd_class_report)
