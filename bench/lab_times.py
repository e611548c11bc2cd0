"""How long running each solution notebook takes here: the machine's share of a lab's time.

    .venv/bin/python bench/lab_times.py [--labs 01 03]

Runs every solution notebook top to bottom in a fresh kernel on the live stack
(as `lab-env run-solutions` does, without saving outputs), and a reference: a
one-cell notebook through the same executor (a kernel's start and stop), so the
ratios carry over to a faster or slower machine. Writes
bench/results/lab_times.{json,md}; each lab's first cell quotes its minutes
(tests/labs/test_course.py keeps them in step). Needs the stack up; run it
alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env.grading.execute import execute  # noqa: E402
from lab_env.grading.generate import SOLUTIONS_DIR  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def timed_run(path: Path) -> float:
    start = time.perf_counter()
    execute(path, timeout=1800)
    return time.perf_counter() - start


def reference() -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.ipynb"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
        return timed_run(path)


def _saved_rows() -> list[dict]:
    """The rows of the last results, each with its commit and reference (older files kept them once)."""
    try:
        saved = json.loads((RESULTS / "lab_times.json").read_text())
    except (OSError, ValueError):
        return []
    return [
        {"commit": saved.get("commit", "?"), "reference_s": saved.get("reference_s", 0.0), **r}
        for r in saved.get("labs", [])
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labs", nargs="*", help="lab numbers (default: all)")
    args = parser.parse_args()
    paths = [p for p in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb")) if not args.labs or p.name[:2] in args.labs]
    ref = reference()
    rows = []
    for path in paths:
        seconds = timed_run(path)
        rows.append(
            {
                "lab": path.name[:2],
                "notebook": path.name,
                "seconds": round(seconds, 1),
                "ratio": round(seconds / ref, 1),
            }
        )
        print(f"{path.name}: {seconds:.0f} s", flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    for row in rows:  # each row says when it was measured, against which reference
        row.update(commit=commit, reference_s=round(ref, 2))
    measured = {r["lab"] for r in rows}
    # --labs re-measures those and keeps the other rows as they were.
    kept = [r for r in _saved_rows() if r["lab"] not in measured] if args.labs else []
    rows = sorted(kept + rows, key=lambda r: r["lab"])
    result = {"labs": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lab_times.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Running each solution notebook, top to bottom",
        "",
        "`bench/lab_times.py` on this 2-core machine with the stack up, one notebook at a time. Each row",
        "gives its commit and its reference: a one-cell notebook through the same executor (a kernel started",
        "and stopped) in the same run, so rows measured in different runs compare by their ratio.",
        "This is the machine's share of each lab: a learner also reads, thinks and writes.",
        "",
        "| lab | notebook | seconds | minutes | reference (s) | × reference | commit |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        *(
            f"| {r['lab']} | `{r['notebook']}` | {r['seconds']:.0f} | {r['seconds'] / 60:.1f} | "
            f"{r['reference_s']:.1f} | {r['ratio']:.0f} | {r['commit']} |"
            for r in rows
        ),
        "",
    ]
    (RESULTS / "lab_times.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
