"""The grading sandbox on a real engine, without the stack: what a check starts from the learner's
folder runs inside it, ends when the grader stops it, and the grader's own requests cannot be
answered by a module of the learner's (lab_env/grading/sandbox.py, inside.py, core/procs.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_env.core import procs
from lab_env.core.paths import REPO_ROOT
from lab_env.core.probes import wait_until
from lab_env.grading.sandbox import TINI, Sandbox, ensure_image, lease_slot
from tests import own_engine

pytestmark = [pytest.mark.containers]
ours = own_engine.ours  # the fixture


@pytest.fixture
def box(ours, tmp_path) -> Iterator[Sandbox]:
    """A sandbox whose PID 1 waits (as the kernel would), and the confinement a worker installs."""
    ensure_image(ours)
    with lease_slot() as slot:  # as a grading worker does: no grading beside this test has its uid and ports
        yield from _started(ours, tmp_path, slot.number)


def _started(ours, tmp_path: Path, slot: int) -> Iterator[Sandbox]:
    sandbox = Sandbox(f"lab-env-grade-test-{tmp_path.name[-12:].lower().strip('_')}", tmp_path / "box", slot, "c0ffee")
    sandbox.prepare()
    argv = sandbox.run_argv(Path("/unused"))
    argv = [*argv[: argv.index(TINI) + 2], "sleep", "600"]
    argv.insert(2, "-d")
    subprocess.run(argv, env={"DOCKER_HOST": ours.host, "PATH": "/usr/bin:/bin"}, check=True, capture_output=True)
    procs.confine(sandbox.confinement(ours))
    try:
        yield sandbox
    finally:
        procs.confine(None)
        sandbox.remove(ours)


def _processes(ours, box: Sandbox) -> str:
    return ours.check("top", box.name, "-eo", "pid,args")


def test_what_a_check_starts_from_the_learners_folder_runs_in_the_sandbox(box, ours, tmp_path):
    solutions = str(REPO_ROOT / "solutions")
    probe = (
        f"import os, time; print(os.getuid(), os.path.exists({solutions!r}), "
        "open('/proc/1/cmdline').read().split(chr(0))[0], flush=True); time.sleep(600)"
    )
    log = tmp_path / "probe.log"
    wrapper = procs.spawn([sys.executable, "-c", probe, "learner-probe"], log, cwd=box.workspace)
    wait_until(lambda: log.exists() and log.read_text().strip() != "", 60, "the probe's first line")
    # Its own uid, no solutions, and its own pid namespace (pid 1 is the sandbox's tini).
    assert log.read_text().split() == [str(box.uid), "False", TINI], log.read_text()
    assert "learner-probe" in _processes(ours, box)
    procs.stop(wrapper.pid)  # as stop_app does: the wrapper's input closes, the process inside ends
    wait_until(lambda: "learner-probe" not in _processes(ours, box), 30, "the probe gone from the sandbox")


def test_a_process_started_elsewhere_is_not_confined(box, tmp_path):
    done = procs.capture([sys.executable, "-c", "import os; print(os.getuid())"], cwd=tmp_path, timeout=60)
    assert done.stdout.strip() == "0"  # the grader's own (root here)
    inside = procs.capture([sys.executable, "-c", "import os; print(os.getuid())"], cwd=box.workspace, timeout=60)
    assert inside.stdout.strip() == str(box.uid), inside


def test_a_module_of_the_learners_cannot_answer_for_the_grader(box, ours):
    fake = box.workspace / "lab_env" / "grading"
    fake.mkdir(parents=True)
    (box.workspace / "lab_env" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "inside.py").write_text("print('[\"forged-app-c0ffee\"]')\n")
    assert box.exec_lab_env(ours, "apps", box.token) == []


_PEEK = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        args = open(f"/proc/{pid}/cmdline").read().split(chr(0))
    except OSError:
        continue
    if int(pid) == os.getpid():
        continue
    grader = any("lab_env.grading.inside" in a for a in args)
    role = "grader" if grader else "learner" if "learner-probe" in args else None
    if role:
        try:
            os.listdir(f"/proc/{pid}/fd")
            print(role, "open")
        except PermissionError:
            print(role, "closed")
"""


def test_the_graders_process_in_the_sandbox_is_closed_to_the_learners(box, ours, tmp_path):
    probe = "import time; print('up', flush=True); time.sleep(600)"
    log = tmp_path / "probe.log"
    wrapper = procs.spawn([sys.executable, "-c", probe, "learner-probe"], log, cwd=box.workspace)  # inside.py tether
    try:
        wait_until(lambda: log.exists() and "up" in log.read_text(), 60, "the probe's first line")
        # Another process of the learner's, as the same user, looks at both.
        seen = ours.check("exec", "--user", f"{box.uid}:{box.uid}", box.name, sys.executable, "-c", _PEEK)
        assert sorted(seen.splitlines()) == ["grader closed", "learner open"], seen
    finally:
        procs.stop(wrapper.pid)
