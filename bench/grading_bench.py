"""Grading throughput: a batch of lab 01 submissions, serial versus --jobs 2, or without versus with a sandbox.

    .venv/bin/python bench/grading_bench.py [--copies 10] [--load]
    .venv/bin/python bench/grading_bench.py --sandbox [--copies 6]   # --jobs 2, sandbox off then on

Every copy is the solution notebook with its outputs cleared (full marks),
graded against the live stack exactly as `lab-env grade` does. The reference
is the serial run (--jobs 1) in the same script; with --sandbox it is the
same batch at --jobs 2 graded without a sandbox, and the rows are its cost
(each submission's kernel and apps in a container of their own; the engine must
answer: `lab-env engine up`). The class-of-60 column is 60 submissions at the
measured rate. With --load a busy loop runs on every core throughout (a noisy
machine). Prints a table and writes bench/results/grading[-load|-sandbox].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env.grading import grade_folder  # noqa: E402
from lab_env.grading.spec import load_spec  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _profile(log: Path, mode: str) -> str:
    """Where one graded notebook spends its time, from the worker's log (slowest first)."""
    steps = []
    for line in log.read_text().splitlines():
        seconds, _, what = line.strip().partition("s  ")
        try:
            steps.append((float(seconds), what))
        except ValueError:
            continue  # a warning from the kernel, not a timing
    total = sum(s for s, _ in steps)
    rows = "".join(
        f"| {what} | {sec:.2f} | {100 * sec / total:.0f}% |\n" for sec, what in sorted(steps, reverse=True)[:8]
    )
    return (
        f"| step (one notebook, {mode}) | seconds | share |\n| --- | ---: | ---: |\n"
        f"{rows}| all steps | {total:.2f} | 100% |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--load", action="store_true", help="a busy loop on every core while grading")
    parser.add_argument("--sandbox", action="store_true", help="--jobs 2 without, then with, a sandbox")
    args = parser.parse_args()
    # (label, jobs, sandbox): the first row is the reference.
    modes = (
        [("--jobs 2, no sandbox", 2, "off"), ("--jobs 2, sandbox", 2, "on")]
        if args.sandbox
        else [("--jobs 1", 1, "off"), ("--jobs 2", 2, "off")]
    )
    loops = (
        [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
        if args.load
        else []
    )
    spec = load_spec("01")
    nb = nbformat.read(spec.solution, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    rows = {}
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for i in range(args.copies):
            nbformat.write(nb, folder / f"learner{i:02d}.ipynb")
        for label, jobs, sandbox in modes:
            start = time.perf_counter()
            results, out = grade_folder(
                folder,
                "01",
                Path(tmp) / f"out-{jobs}-{sandbox}",
                jobs=jobs,
                progress=True,
                regrade_identical=True,
                sandbox=sandbox,
            )
            if label == modes[-1][0]:
                profile = _profile(out / "logs" / "learner00.log", label)
            elapsed = time.perf_counter() - start
            full = sum(1 for r in results if r.total == spec.max_points)
            lost = [f"{r.learner}: {c.message}" for r in results for c in r.checks if not c.passed]
            rows[label] = {
                "seconds": elapsed,
                "per_minute": 60 * args.copies / elapsed,
                "full_marks": full,
                "lost_points": lost,
                "class_of_60_min": 60 * elapsed / args.copies / 60,
            }
            for line in lost:  # every copy is correct: a lost point is a timing problem to look into
                print(f"{label}: {line}")

    for loop in loops:
        loop.kill()
    reference = rows[modes[0][0]]["seconds"]
    table = (
        "| mode | submissions | seconds | graded/min | class of 60 (min) | full marks | lost points | speed-up |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        + "".join(
            f"| {label} | {args.copies} | {r['seconds']:.0f} | {r['per_minute']:.2f} | "
            f"{r['class_of_60_min']:.1f} | {r['full_marks']} | {len(r['lost_points'])} | "
            f"{reference / r['seconds']:.2f}x |\n"
            for label, r in rows.items()
        )
    )
    if args.sandbox:
        off, on = (rows[label]["seconds"] / args.copies for label, _, _ in modes)
        table += f"\nThe sandbox costs {on - off:+.1f} s per submission ({on:.1f} s against {off:.1f} s) at --jobs 2.\n"
    print(table)
    print(profile)
    name = "grading" + ("-sandbox" if args.sandbox else "") + ("-load" if args.load else "")
    where = f"2 cores, with a busy loop on each of {len(loops)} cores" if args.load else "2 cores, otherwise idle"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"copies": args.copies, "load": args.load, "sandbox": args.sandbox, "runs": rows}, indent=2) + "\n"
    )
    (RESULTS / f"{name}.md").write_text(
        f"# Grading benchmark\n\nLab 01, {args.copies} copies of the solution, {where}. Command: "
        f"`python bench/grading_bench.py --copies {args.copies}{' --load' if args.load else ''}"
        f"{' --sandbox' if args.sandbox else ''}`. Speed-up is against {modes[0][0]} in the same run; "
        f"the class-of-60 time is 60 submissions at the measured rate.\n\n{table}\n"
        f"Where the time goes (the worker's log of the first submission):\n\n{profile}"
    )


if __name__ == "__main__":
    main()
