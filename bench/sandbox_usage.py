"""What a grading sandbox uses at its peak, lab by lab, against the limits it runs under.

    .venv/bin/python bench/sandbox_usage.py [--labs 01 03 05] [--load]

For each lab, the solution notebook (outputs cleared) and the unsolved lab are
graded side by side in their sandboxes, exactly as `lab-env grade` does by
default (`lab-env engine up` first), while a sampler reads every sandbox's
cgroup every 0.25 s: its peak memory (the kernel's own high-water mark, so no
spike between samples is missed) and its highest process count seen (threads
included, as the pids limit counts them; sampled, so a short spike can be
missed). Ratios are against the sandbox's limits (`Sandbox.memory`,
`Sandbox.pids`), the reference every lab must stay under, and against lab
01's row. Needs the engine's cgroup v1 hierarchy under /sys/fs/cgroup (lab-env's
own dockerd here). With --load a busy loop runs on every core throughout.
Prints a table and writes bench/results/sandbox-usage.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env.grading import grade_folder  # noqa: E402
from lab_env.grading.generate import LABS_DIR  # noqa: E402
from lab_env.grading.sandbox import Sandbox  # noqa: E402
from lab_env.grading.spec import load_spec  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CGROUPS = Path("/sys/fs/cgroup")
MIB = 2**20


def _size(text: str) -> int:
    number, unit = text[:-1], text[-1].lower()
    return int(number) * {"k": 2**10, "m": MIB, "g": 2**30}[unit]


class Sampler(threading.Thread):
    """Every container's peak memory and highest pid count, by container id, until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, dict[str, int]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            for folder in (CGROUPS / "pids" / "docker").glob("*/"):
                peak = self.peaks.setdefault(folder.name, {"pids": 0, "memory": 0})
                try:
                    peak["pids"] = max(peak["pids"], int((folder / "pids.current").read_text()))
                    memory = CGROUPS / "memory" / "docker" / folder.name / "memory.max_usage_in_bytes"
                    peak["memory"] = max(peak["memory"], int(memory.read_text()))
                except (OSError, ValueError):
                    continue  # the container is going away


def _notebooks(lab: str, folder: Path) -> None:
    spec = load_spec(lab)
    solved = nbformat.read(spec.solution, as_version=4)
    for cell in solved.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(solved, folder / "solved.ipynb")
    nbformat.write(nbformat.read(LABS_DIR / spec.solution.name, as_version=4), folder / "unsolved.ipynb")


def measure(lab: str) -> dict:
    before = set()
    if (CGROUPS / "pids" / "docker").is_dir():
        before = {p.name for p in (CGROUPS / "pids" / "docker").glob("*/")}
    sampler = Sampler()
    sampler.start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"sandbox-usage-{lab}-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        _notebooks(lab, folder)
        results, _ = grade_folder(folder, lab, jobs=2, progress=False, sandbox="on")
    sampler.done.set()
    sampler.join()
    boxes = [peak for cid, peak in sampler.peaks.items() if cid not in before]
    if len(boxes) != 2:
        raise SystemExit(f"lab {lab}: saw {len(boxes)} new containers' cgroups, not 2 (is the engine lab-env's own?)")
    by_learner = {r.learner: r for r in results}
    return {
        "lab": lab,
        "seconds": round(time.monotonic() - started, 1),
        "scores": {name: f"{r.total}/{load_spec(lab).max_points}" for name, r in by_learner.items()},
        "sandboxed": all(r.sandboxed for r in results),
        "peak_memory_mib": max(b["memory"] for b in boxes) // MIB,
        "peak_pids": max(b["pids"] for b in boxes),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labs", nargs="+", default=["01", "02", "03", "04", "05", "06", "07"])
    parser.add_argument("--load", action="store_true", help="a busy loop on every core while grading")
    args = parser.parse_args()
    limits = Sandbox("unused", Path("/unused"), 0, "unused")
    memory_limit, pids_limit = _size(limits.memory), limits.pids
    loops = []
    if args.load:
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        rows = [measure(lab) for lab in args.labs]
    finally:
        for loop in loops:
            loop.kill()
    first = rows[0]
    lines = [
        f"# A grading sandbox's peak use, by lab{' (busy loop on every core)' if args.load else ''}",
        "",
        "Made by `bench/sandbox_usage.py`: the solution and the unsolved lab graded side by side, each in its",
        f"sandbox; the higher of the two. Limits: {limits.memory} of memory, {pids_limit} pids (threads count).",
        "",
        f"| lab | scores (solved, unsolved) | sandboxed | peak memory (MiB) | of the limit | × lab {first['lab']} "
        f"| peak pids | of the limit | grading wall (s) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['lab']} | {row['scores'].get('solved')}, {row['scores'].get('unsolved')} | {row['sandboxed']} "
            f"| {row['peak_memory_mib']} | {row['peak_memory_mib'] * MIB / memory_limit:.0%} "
            f"| {row['peak_memory_mib'] / max(1, first['peak_memory_mib']):.2f} "
            f"| {row['peak_pids']} | {row['peak_pids'] / pids_limit:.0%} | {row['seconds']} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sandbox-usage.md").write_text(table)
    record = {"load": args.load, "memory_limit": limits.memory, "pids_limit": pids_limit, "rows": rows}
    (RESULTS / "sandbox-usage.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
