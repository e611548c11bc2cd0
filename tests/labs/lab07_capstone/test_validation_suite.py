"""The capstone's validation-suite check fails on the suites a learner may
write that miss a bug or refuse correct code, each with its own message,
against candidates running on live hosts. Each wrong suite is the solution's
own ``problems`` with one probe taken out or spoiled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs.lab07_capstone import checks as lab07
from lab_env.models import trial
from tests.grading.solution_mutations import rejected

pytestmark = pytest.mark.stack
SOLUTION = SOLUTIONS_DIR / "07_capstone.ipynb"


def suite(*edits: tuple[str, str]) -> Callable[[str], list[str]]:
    """The solution's ``problems`` with each (old, new) edit made."""
    cells = nbformat.read(SOLUTION, as_version=4).cells
    source = next(cell.source for cell in cells if cell.source.startswith("def problems(host"))
    for old, new in edits:
        assert source.count(old) == 1, f"problems must contain {old!r} once: update this test"
        source = source.replace(old, new)
    namespace: dict = {"trial": trial}
    exec(compile(source, "problems", "exec"), namespace)
    return namespace["problems"]


WRONG = {
    "never restarts the host": (
        [("    trial.restart(host)\n", "")],
        "accepts the candidate 'unsaved'",
    ),
    "never retries": (
        [("for _ in range(2):", "for _ in range(1):")],
        "accepts the candidate 'double-reserve'",
    ),
    "never retries Release": (
        [('    trial.call(host, "bed", "Release", "o-3")  # a retry\n', "")],
        "accepts the candidate 'double-release'",
    ),
    "probes products another probe changed": (
        [('trial.call(host, "desk", "Stock")', 'trial.call(host, "lamp", "Stock")')],
        "in the candidate that meets the specification",
    ),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_suite_that_misses_a_bug_or_refuses_correct_code_fails(wrong):
    edits, because = WRONG[wrong]
    rejected(lab07.validation_suite, suite(*edits), because=because)


# What a sandboxed kernel runs: trial's two calls from another process that did not start the host,
# which the worker's trial desk serves (lab_env/grading/trial_desk.py).
KERNEL_SIDE = """
import json, sys
from lab_env.models import trial
host, what = sys.argv[1], sys.argv[2]
try:
    if what == "suite":
        before = trial.call(host, "lamp", "Restock", 5)
        trial.restart(host)
        print(json.dumps([before, trial.call(host, "lamp", "Stock")]))
    else:
        trial.call(host, "lamp", what)
except Exception as err:
    print(json.dumps({type(err).__name__: str(err)}))
"""


def kernel_side(host: str, what: str, env: dict[str, str], home: Path) -> object:
    """Run from a home of its own, as a sandboxed kernel: no record of the host to fall back on."""
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", KERNEL_SIDE, host, what],
        env={**os.environ, "HOME": str(home), "LAB_ENV_STATE": str(home / "state"), **env},
        capture_output=True,
        text=True,
        timeout=600,  # a safety net: a restart takes seconds
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_trial_desk_serves_the_hosts_its_worker_runs_and_no_others(tmp_path):
    from lab_env.core.names import unique_name
    from lab_env.grading.trial_desk import TrialDesk
    from lab_env.models.candidates import SPECIFICATIONS

    correct = next(c for c in SPECIFICATIONS["product agent"].candidates if c.bug is None)
    desk = TrialDesk()
    try:
        with trial.hosted(correct.source, unique_name("desk")) as host:
            before, after = kernel_side(host, "suite", desk.env(), tmp_path)
            assert before == after >= 5, "the stock through the desk, before and after a restart through it"
            failed = kernel_side(host, "NoSuchMethod", desk.env(), tmp_path)
            assert list(failed) == ["ActorCallFailed"], failed  # the candidate's own error, as on the grader
            refused = kernel_side(host, "Stock", desk.env() | {trial.TRIAL_TOKEN_ENV: "guess"}, tmp_path)
            assert "refused the token" in refused["LabEnvError"]
        gone = kernel_side(host, "Stock", desk.env(), tmp_path)
        assert "no candidate host" in gone["LabEnvError"], "a host stopped is no longer served"
    finally:
        desk.close()
