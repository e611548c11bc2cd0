"""A learner who saves an ``%%app_file`` cell again but does not restart the app
gets "run the cell that starts it again", not "not done yet": the running
process still has the stub its file no longer has. Real processes, no stack."""

from __future__ import annotations

import os
import time

import pytest

from lab_env.core import registry
from lab_env.labs import checks
from lab_env.labs.checks import CheckFailed, check
from lab_env.notebooks.workspace import _program_files, outdated_programs
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
    monkeypatch.setattr(checks, "_outdated", lambda args: outdated_programs(tmp_path))  # the kernel's workspace
    with pytest.raises(CheckFailed, match="not done yet"):
        handler_check()
    _saved_later(program, LOOP)
    with pytest.raises(CheckFailed, match="still runs the agent.py it started with") as failed:
        handler_check()
    assert failed.value.hint == "run the cell that starts it again, then this check"


def test_the_files_a_command_runs():
    assert _program_files(["python", "-m", "uvicorn", "haggle_back:app", "--port", "1"]) == ["haggle_back.py"]
    assert _program_files(["python", "-u", "agent.py"]) == ["agent.py"]
    assert _program_files(["python", "-u", "-m", "tools.feed"]) == ["tools/feed.py"]


def test_a_workflow_host_is_outdated_by_the_module_it_loads(tmp_path):
    """Labs 04, 06 and 07 start a generic host that loads the learner's module named in its environment."""
    name = unique_name("t-hosted")
    record = registry.Record(
        name,
        extra={
            "cwd": str(tmp_path),
            "app_pid": os.getpid(),  # a live process, started before the file below was saved
            "command": ["python", "-m", "uvicorn", "lab_env.runtime.workflows.host:app"],
            "env": {"LAB_WORKFLOW_MODULE": "auction_house"},
        },
    )
    record.add(os.getpid())
    registry.save(record)
    try:
        _saved_later(tmp_path / "auction_house.py", "class AuctioneerActor: ...\n")
        assert outdated_programs(tmp_path, [name]) == [(name, "auction_house.py")]
        assert outdated_programs(tmp_path, ["another-app"]) == []  # only the apps a check was given
    finally:
        registry.forget(name)
