"""Grade one submission: assemble, run with pytest + nbval, score its checks."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..apps import stop_all_apps
from .assemble import GRADED_TAG, graded_notebook
from .spec import LabSpec

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL = re.compile(r"::Cell (\d+)$")


@dataclass
class CheckResult:
    name: str
    points: int
    earned: int
    passed: bool
    message: str
    hint: str = ""
    hidden: bool = False


@dataclass
class Graded:
    learner: str
    lab: str
    status: str  # "graded" or "not graded"
    reason: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. learner cells that timed out

    @property
    def total(self) -> int:
        return sum(c.earned for c in self.checks)


def identify_lab(nb: nbformat.NotebookNode, specs: dict[str, LabSpec]) -> str | None:
    """The lab a notebook belongs to: its metadata, else the most shared cell ids."""
    declared = nb.metadata.get("lab_env", {}).get("lab")
    if declared:
        return declared
    ids = {c.get("id") for c in nb.cells}
    overlap = {lab: len(ids & set(spec.cell_ids)) for lab, spec in specs.items()}
    best = max(overlap, key=overlap.get, default=None)
    return best if best and overlap[best] > 0 else None


def parse_failure(text: str) -> tuple[str, str]:
    """(message, hint) from nbval's report of a failed cell."""
    text = _ANSI.sub("", text)
    if "Kernel dead" in text:
        return ("not run: the notebook's kernel had died (interrupting a cell that awaits something, "
                "after it timed out, stops the kernel)", "make sure no cell runs forever")
    mark = re.search(r"^\u274c (.+)$", text, re.M)
    if mark:
        hint = re.search(r"^\s+Hint: (.+)$", text, re.M)
        return mark[1].strip(), hint[1].strip() if hint else ""
    timeout = re.search(r"Timeout of (\d+) seconds exceeded", text)
    if timeout:
        return f"timed out after {timeout[1]} s (an endless loop, or a call that never returns?)", ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^\w*(Error|Exception|Interrupt)\b", line)]
    last = errors[-1] if errors else (lines[-1] if lines else "the check did not run")
    return f"the check could not run: {last[:200]}", "run the notebook top to bottom and fix the first error"


def grade_notebook(
    learner: str, nb: nbformat.NotebookNode, spec: LabSpec, workdir: Path, cell_timeout: int, timeout: int
) -> Graded:
    workdir.mkdir(parents=True, exist_ok=True)
    graded = graded_notebook(nb, spec)
    path = workdir / f"{spec.lab}.ipynb"
    nbformat.write(graded, path)
    results_path = workdir / "cells.json"
    token = secrets.token_hex(3)  # the kernel's unique_name() suffix: its apps, actor types, topics
    env = {**os.environ, "LAB_ENV_GRADE_RESULTS": str(results_path), "LAB_RUN_TOKEN": token,
           "LAB_ENV_PROGRESS": "0", "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "pytest", path.name, "-p", "lab_env.grading.plugin", "-p", "no:cacheprovider",
            "-c", os.devnull, "--rootdir", str(workdir), "-o", "addopts=", "-q",
            "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}",
            f"--junitxml={workdir / 'nbval-junit.xml'}"]
    timed_out = False
    with open(workdir / "pytest.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            stop_all_apps(token=token)  # apps the learner's kernel started live in their own sessions

    cells = json.loads(results_path.read_text()) if results_path.exists() else []
    outcome_by_index = {}
    for row in cells:
        match = _CELL.search(row["nodeid"])
        if match:
            outcome_by_index[int(match[1])] = row
    result = Graded(learner, spec.lab, "graded")
    points = {c.name: c for c in spec.checks}
    code_cells = [c for c in graded.cells if c.cell_type == "code"]  # nbval numbers code cells only
    for index, cell in enumerate(code_cells):
        if GRADED_TAG not in cell.metadata.get("tags", []):
            row = outcome_by_index.get(index)
            if row and row["outcome"] != "passed" and "Timeout of" in row["text"]:
                first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
                result.notes.append(f"code cell {index + 1} ({first!r}) timed out after {cell_timeout} s")
            continue
        name = cell.metadata["lab_env"]["check"]
        row = outcome_by_index.get(index)
        spec_check = points[name]
        if row is None:
            message = (f"not reached: the notebook ran longer than {timeout} s" if timed_out
                       else "not reached: the run stopped before this cell")
            result.checks.append(CheckResult(name, spec_check.points, 0, False, message, "", spec_check.hidden))
        elif row["outcome"] == "passed":
            result.checks.append(CheckResult(name, spec_check.points, spec_check.points, True, "passed", "", spec_check.hidden))
        else:
            message, hint = parse_failure(row["text"])
            result.checks.append(CheckResult(name, spec_check.points, 0, False, message, hint, spec_check.hidden))
    order = [c.name for c in spec.checks]
    result.checks.sort(key=lambda c: order.index(c.name))
    return result
