"""Run a plain process (a Kafka producer or consumer, an agent) beside the
apps: logs, readiness, clean stop, and a real crash on demand.

    member = start_worker(unique_name("member-a"), python_command("member.py", "--group", group),
                          cwd=workspace(), ready=r"assigned")
    member.kill()      # SIGKILL: no close(), no commit, as when a machine dies
    member.restart()   # same command, same name, waits until ready again
    stop_worker(member)

Workers share the apps' process registry (lab_env.core.registry), so `lab-env down`,
`lab-env status` and the grader's sweep see them like apps. Their names
take a run token (`unique_name`) so two runs never share one.
"""

from __future__ import annotations

import atexit
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.core import procs, registry
from lab_env.core.ports import hold
from lab_env.core.probes import wait_all, wait_until
from lab_env.core.profile import current
from lab_env.runtime.apps import _validate_app_id, apps_dir, run_token

_started_here: dict[str, Worker] = {}

Ready = str | Callable[[], bool] | None


def python_command(script: str, *args: str) -> list[str]:
    """Run ``script`` (a file, or ``-m module``) with this Python, unbuffered."""
    head = ["-m", script.removeprefix("-m ").strip()] if script.startswith("-m ") else [script]
    return [sys.executable, "-u", *head, *args]


@dataclass
class Worker:
    """A process lab-env started, with its log. ``ready`` is a regex its log
    must match, or a probe, before start_worker returns."""

    name: str
    argv: list[str]
    workdir: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready: Ready = None
    pid: int = 0
    starts: int = 0  # how many times it was started (a restart after a kill counts)
    started: float | None = None  # its process start time: the pid-reuse guard
    ports: tuple[int, ...] = ()  # what it listens on, if the caller chose them: a restart binds them again

    @property
    def log(self) -> Path:
        return self.workdir / "worker.log"

    def exit_reason(self) -> str | None:
        """Why it is gone ("exited: <its log's last line>"), or None while it runs (a Watched for wait_until)."""
        return _exited(self)

    def logs(self, lines: int = 40) -> str:
        return procs.tail(self.log, lines)

    def log_lines(self, pattern: str = "") -> list[str]:
        """Every line of its log (all runs) that matches ``pattern``."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        rx = re.compile(pattern)
        return [line for line in text.splitlines() if rx.search(line)]

    def alive(self) -> bool:
        return bool(self.pid) and registry.is_ours(self.pid, self.started)

    def kill(self) -> None:
        """SIGKILL it (and anything it forked): it gets no chance to clean up."""
        hold(self.ports)  # kept for the restart that usually follows
        if self.pid and not registry.reused(self.pid, self.started):
            procs.kill(self.pid)
        self.pid = 0
        self._save()

    def restart(self, timeout: float = 180.0) -> None:
        """Start the same command again (after a kill or a stop) and wait until ready."""
        if self.alive():
            procs.stop(self.pid, timeout=10)
        _launch(self, timeout)

    def _save(self) -> None:
        record = registry.Record(
            self.name,
            token=self.env.get("LAB_RUN_TOKEN"),
            extra={"worker": True, "argv": self.argv, "log": str(self.log), "cwd": str(self.cwd) if self.cwd else None},
        )
        if self.pid:
            record.add(self.pid, self.started)
        registry.save(record)


def start_worker(
    name: str,
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    ready: Ready = None,
    timeout: float = 180.0,  # a safety net: graded runs share a busy machine (a Kafka client's start can take long)
    ports: Sequence[int] = (),
) -> Worker:
    """Start ``argv`` as a worker named ``name`` and wait until it is ready.

    ``ports``: what it listens on (from free_ports): kept reserved across a kill and restart.
    If it exits before it is ready, the error quotes its last log line, and
    nothing is left running. Re-running a cell that starts the same name
    replaces the earlier worker.
    """
    _validate_app_id(name)
    if name in _started_here:
        stop_worker(_started_here.pop(name))
    workdir = apps_dir() / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    child_env = {
        **current().component_env(),
        "LAB_RUN_TOKEN": run_token(),
        "WORKER_NAME": name,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    worker = Worker(name, list(argv), workdir, Path(cwd) if cwd else None, child_env, ready, ports=tuple(ports))
    atexit.register(stop_worker, worker)
    _launch(worker, timeout)
    _started_here[name] = worker
    return worker


def _launch(worker: Worker, timeout: float) -> None:
    hold(worker.ports)  # reserved again: formatting a Kafka node can take a while, and a restart comes later
    offset = worker.log.stat().st_size if worker.log.exists() else 0
    process = registry.Managed(
        "it",
        worker.argv,
        worker.log,
        env=worker.env,
        cwd=worker.cwd,
        ready=_ready_probe(worker, offset),
        reason=registry.telling_line,
    )
    try:
        worker.pid, worker.started = process.spawn(), process.started
        worker.starts += 1
        worker._save()
        wait_all({worker.name: process.waiting(f"see its log: {worker.log}")}, timeout, worker.name, progress=False)
    except BaseException:
        stop_worker(worker)
        raise


def _ready_probe(worker: Worker, offset: int) -> Callable[[], bool]:
    if worker.ready is None:
        return lambda: True
    if callable(worker.ready):
        return worker.ready
    rx = re.compile(worker.ready)

    def in_log() -> bool:  # only this run's lines count
        try:
            with open(worker.log, "rb") as f:
                f.seek(offset)
                return bool(rx.search(f.read().decode(errors="replace")))
        except FileNotFoundError:
            return False

    return in_log


def _exited(worker: Worker) -> str | None:
    if worker.pid and not worker.alive():
        return f"it exited: {registry.telling_line(worker.logs(400))} (its log: {worker.log})"
    return None


def stop_worker(worker: Worker) -> None:
    """SIGTERM it (a consumer closes and leaves its group), then forget it. Safe twice."""
    if worker.pid and not registry.reused(worker.pid, worker.started):
        procs.stop(worker.pid, timeout=10)
    worker.pid = 0
    registry.forget(worker.name)
    if _started_here.get(worker.name) is worker:
        del _started_here[worker.name]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, workers: Sequence[Worker] = ()) -> None:
    """``wait_until(predicate, timeout, what, watch=workers)``, the name lab 03 and 06 notebooks saved before."""
    wait_until(predicate, timeout, what, watch=workers, fix="fix it, then run the cell again")


def stop_all_workers() -> None:
    for worker in list(_started_here.values()):
        stop_worker(worker)
