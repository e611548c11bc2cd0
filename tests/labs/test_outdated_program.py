"""A learner who saves an ``%%app_file`` cell again but does not restart the app
gets "run the cell that starts it again", not "not done yet": the running
process still has the stub its file no longer has. Real processes, no stack."""

from __future__ import annotations

import os
import time

import pytest

from lab_env.labs import checks
from lab_env.labs.checks import CheckFailed, check
from lab_env.notebooks.workspace import outdated_programs
from lab_env.runtime.apps import unique_name
from lab_env.runtime.workers import python_command, start_worker, stop_worker

STUB = 'raise NotImplementedError("write the handler")\n'
LOOP = "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(1)\n"


@check("handler", hint="the handler's hint")
def handler_check() -> None:
    raise NotImplementedError("write the handler")  # what a call into the old process answers


@pytest.fixture
def running(tmp_path):
    program = tmp_path / "agent.py"
    program.write_text(f"if False:\n    {STUB}{LOOP}")  # the stub is in the file, as build-labs writes it
    worker = start_worker(unique_name("t-outdated"), python_command("agent.py"), cwd=tmp_path, ready="ready")
    yield worker, program
    stop_worker(worker)


def _saved_later(program, text: str) -> None:
    program.write_text(text)
    later = time.time() + 5  # saved well after the process started, without waiting for it
    os.utime(program, (later, later))


def test_a_program_is_outdated_once_its_file_is_saved_without_the_stub(running, tmp_path):
    worker, program = running
    assert outdated_programs(tmp_path) == []
    _saved_later(program, f"if False:\n    {STUB}{LOOP}")  # saved again, stub still there: not done yet
    assert outdated_programs(tmp_path) == []
    _saved_later(program, LOOP)
    assert outdated_programs(tmp_path) == [(worker.name, "agent.py")]


def test_the_check_says_to_restart_the_app_instead_of_not_done(running, tmp_path, monkeypatch):
    _, program = running
    monkeypatch.setattr(checks, "_outdated", lambda: outdated_programs(tmp_path))  # the kernel's workspace
    with pytest.raises(CheckFailed, match="not done yet"):
        handler_check()
    _saved_later(program, LOOP)
    with pytest.raises(CheckFailed, match="still runs the agent.py it started with") as failed:
        handler_check()
    assert failed.value.hint == "run the cell that starts it again, then this check"
