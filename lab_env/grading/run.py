"""Grade one submission: run its assembled notebook in a worker process, read
the worker's signed verdicts."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from lab_env.core import procs
from lab_env.grading.assemble import Assembly
from lab_env.grading.sandbox import Slot
from lab_env.grading.signing import verify
from lab_env.grading.spec import LabSpec
from lab_env.runtime.apps import kill_run
from lab_env.stack.engine import Engine


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
    notes: list[str] = field(default_factory=list)  # what the grader did to the notebook, and why
    run_token: str = ""  # the run's LAB_RUN_TOKEN: its apps, topics and clusters end with "-<token>"
    finished: bool = False  # the worker ran the notebook to its end and signed its verdicts
    hints: dict[int, tuple[int, int]] = field(default_factory=dict)  # exercise -> (deepest level, levels) shown
    deducted: int = 0  # points taken off for last-level hints (lab-env grade --deduct-last-hint)
    sandboxed: bool = False  # its kernel ran in a container (sandbox.py), not as the grader's user

    @property
    def total(self) -> int:
        return max(0, sum(c.earned for c in self.checks) - self.deducted)


def identify_lab(nb: nbformat.NotebookNode, specs: dict[str, LabSpec]) -> str | None:
    """The lab a notebook belongs to, from its cells (ids and texts shared with
    a solution); its metadata only breaks ties, since a learner can edit it."""
    ids = {c.get("id") for c in nb.cells}
    texts = {str(c.get("source", "")).strip() for c in nb.cells}
    overlap = {lab: len(ids & set(spec.cell_ids)) + len(texts & spec.fixed_sources) for lab, spec in specs.items()}
    declared = nb.metadata.get("lab_env", {}).get("lab") if isinstance(nb.metadata.get("lab_env"), dict) else None
    best = max(overlap, key=lambda lab: (overlap[lab], lab == declared), default=None)
    if best and overlap[best] > 0:
        return best
    return declared if declared in specs else None


def with_hints(graded: Graded, assembly: Assembly, deduct_last_hint: int) -> Graded:
    """The hints the submission shows, and ``deduct_last_hint`` points off per exercise whose last level it shows."""
    # A last level beyond the first: a one-level hint only repeats what the stub shows.
    last = sum(1 for level, total in assembly.hints.values() if 1 < level >= total)
    return replace(
        graded, hints=dict(assembly.hints), deducted=deduct_last_hint * last if graded.status == "graded" else 0
    )


SANDBOXED = "graded in a sandbox: a container of its own, without the grader's files or processes"
NOT_SANDBOXED = "graded without a sandbox, as the grader's user"


def grade_assembly(
    learner: str,
    assembly: Assembly,
    spec: LabSpec,
    workdir: Path,
    cell_timeout: int,
    timeout: int,
    sandbox: Engine | None = None,
    unsandboxed: str = "",
    slot: Slot | None = None,
) -> Graded:
    """Run an assembled notebook in a worker and read its verdicts; its kernel in a container on ``sandbox``."""
    workdir.mkdir(parents=True, exist_ok=True)
    nbformat.write(assembly.notebook, workdir / "graded.ipynb")
    token = secrets.token_hex(3)  # the kernel's unique_name() suffix: its apps, actor types, topics
    key = secrets.token_bytes(32)  # known to this process and the worker only (never in an environment)
    env = {  # added to this process's environment
        "LAB_RUN_TOKEN": token,
        "LAB_ENV_PROGRESS": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")])),
    }
    job = {
        "workdir": str(workdir),
        "notebook": "graded.ipynb",
        "check_module": spec.check_module,
        "cell_timeout": cell_timeout,
        "timeout": timeout,
        "key": key.hex(),
        "sandbox": {"host": sandbox.host, "managed": sandbox.managed} if sandbox else None,
        "slot": slot.number if slot else 0,  # no other submission graded at the same time has it
    }
    log = workdir / "worker.log"
    log.unlink(missing_ok=True)  # this run's log only
    try:
        # The job (with the key) goes through the worker's stdin. The worker keeps its own
        # deadline; killing its group after timeout + 120 s is the last resort.
        code = procs.run(
            [sys.executable, "-m", "lab_env.grading.worker"],
            log,
            stdin=(json.dumps(job) + "\n").encode(),
            timeout=timeout + 120,
            env=env,
            cwd=workdir,
            pass_fds=(slot.fd,) if slot else (),  # the slot stays taken while the worker lives
        )
    finally:
        kill_run(token)  # the last resort, if the worker itself was killed
    result = _result(learner, spec, workdir, key, assembly.notes, code)
    result.run_token, result.sandboxed = token, sandbox is not None
    result.notes.append(SANDBOXED if sandbox else NOT_SANDBOXED + (f": {unsandboxed}" if unsandboxed else ""))
    return result


def _result(learner: str, spec: LabSpec, workdir: Path, key: bytes, notes: list[str], code: int | None) -> Graded:
    try:
        state = verify(json.loads((workdir / "results.json").read_text()), key)
    except (OSError, ValueError):
        state = {"checks": {}, "notes": [], "finished": False}
    if state is None:
        return Graded(learner, spec.lab, "not graded", "the grader's results were tampered with")
    result = Graded(learner, spec.lab, "graded", notes=[*notes, *state["notes"]], finished=state["finished"])
    if not state["finished"]:
        result.notes.append(f"the grader stopped before the end (exit code {code}); see logs/{learner}.log")
    for check in spec.checks:
        decided = state["checks"].get(check.name)
        if decided is None:
            result.checks.append(CheckResult(check.name, check.points, 0, False, "not reached", "", check.hidden))
            continue
        earned = check.points if decided["passed"] else 0
        result.checks.append(
            CheckResult(
                check.name, check.points, earned, decided["passed"], decided["message"], decided["hint"], check.hidden
            )
        )
    for check in spec.checks:
        note = check.cell.metadata.get("lab_env", {}).get("grading_note")
        if note:
            result.notes.append(note)
    return result
