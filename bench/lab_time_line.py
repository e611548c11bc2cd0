"""The "**Time.**" line of each lab's first cell, from bench/results/lab_times.json and the notebook's checks.

    .venv/bin/python bench/lab_time_line.py [--write]

tests/labs/test_course.py checks that every solution's first cell holds its line; after
bench/lab_times.py runs again, `--write` puts the new lines in (then `lab-env build-labs`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env.labs.course import LAB_TIMES, time_line  # noqa: E402


def lines() -> dict[str, str]:
    times = {r["notebook"]: r["seconds"] for r in json.loads(LAB_TIMES.read_text())["labs"]}
    return {name: time_line(json.loads((ROOT / "solutions" / name).read_text()), s) for name, s in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="put the lines in the solutions' first cells")
    args = parser.parse_args()
    for name, line in lines().items():
        print(f"{name}: {line}")
        if args.write:
            path = ROOT / "solutions" / name
            nb = json.loads(path.read_text())
            text = "".join(nb["cells"][0]["source"])
            kept = [part for part in text.rstrip("\n").split("\n\n") if not part.startswith("**Time.**")]
            nb["cells"][0]["source"] = "\n\n".join([*kept, line]).splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
