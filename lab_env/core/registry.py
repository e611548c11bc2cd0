"""The registry of long-running processes lab-env started: one record per name.

    part = Managed("daprd", argv, log, ready=healthy)
    launch(Record("shop-ab12cd", token=run_token()), {"shop sidecar": part}, timeout=60, what="shop")
    live_pids(load("shop-ab12cd"))   # its processes still running
    stop("shop-ab12cd")              # their process groups stopped, the record forgotten

A record is a JSON file, ``<directory>/<name>.json``, written atomically and
readable by its owner only (an app's record holds its sidecar's environment,
which can hold a secret). It keeps each pid's process start time, so a pid
the kernel gave to another process since is never taken for ours: not
reported as running, never signalled. Any process (a notebook, a terminal,
the grader) can find, load and stop what another one started.

On disk: ``{"app_id": name, "pids": [...], "start_times": {pid: t}, "token": ..., **extra}``.
"app_id" and "pids" are the keys older records (and `lab-env` before this
module) have; a record without start times trusts a live pid, as they did.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lab_env.core import procs
from lab_env.core.paths import state_dir
from lab_env.core.probes import Probe, Waiting, wait_all

# The start time recorded for a pid that was already gone when it was saved: no process has it.
GONE = 0.0
# psutil's start time adds the boot time, which a clock step (NTP) can move by a second.
# A reused pid is another process, started at another moment.
_CLOCK_SLACK_S = 1.0
_RESERVED = ("app_id", "pids", "start_times", "token")


def directory() -> Path:
    """Where the records of apps, workers, planes, sentries and views live."""
    return state_dir() / "apps"


@dataclass
class Record:
    """What a name stands for: its processes, when each started, and what its owner keeps with them."""

    name: str
    pids: list[int] = field(default_factory=list)
    start_times: dict[int, float] = field(default_factory=dict)  # pid -> psutil create_time(); absent: unknown
    token: str | None = None  # the run token of the process that started it
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, pid: int, started: float | None = None) -> None:
        """Add ``pid`` with its start time (read now when not given)."""
        self.pids.append(pid)
        self.start_times[pid] = started if started is not None else start_time(pid)


def start_time(pid: int) -> float:
    """The process start time of ``pid``, or GONE when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return GONE


def reused(pid: int, started: float | None) -> bool:
    """Another process than the one that started at ``started`` has ``pid`` now (None: unknown, trust the pid)."""
    if started is None:
        return False
    now = start_time(pid)
    return now != GONE and abs(now - started) >= _CLOCK_SLACK_S


def is_ours(pid: int, started: float | None) -> bool:
    """``pid`` runs, and is the process that started at ``started``."""
    return procs.alive(pid) and not reused(pid, started)


def _path(name: str, where: Path | None) -> Path:
    return (where or directory()) / f"{name}.json"


def save(record: Record, where: Path | None = None) -> None:
    """Write ``record`` atomically (a temporary file renamed over it), mode 0600."""
    clash = [k for k in _RESERVED if k in record.extra]
    if clash:
        raise ValueError(f"{record.name}: extra fields may not be named {clash}")
    for pid in record.pids:
        if pid not in record.start_times:
            record.start_times[pid] = start_time(pid)
    data = {
        **record.extra,
        "app_id": record.name,
        "pids": record.pids,
        "start_times": {str(p): record.start_times[p] for p in record.pids},
        "token": record.token,
    }
    path = _path(record.name, where)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer, and not *.json: a reader never sees a half-written record.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # also when a stale tmp file had other bits
            json.dump(data, f)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(name: str, where: Path | None = None) -> Record | None:
    """The record ``name``, or None when there is none or it cannot be read."""
    try:
        data = json.loads(_path(name, where).read_text())
        return _parse(name, data)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _parse(name: str, data: dict[str, Any]) -> Record:
    if not isinstance(data, dict):
        raise ValueError("not a record")
    extra = {k: v for k, v in data.items() if k not in _RESERVED}
    if "pids" in data:
        pids = data["pids"]
        times = {int(p): float(t) for p, t in (data.get("start_times") or {}).items()}
    elif "pid" in data:  # a stack service's pid file before this module: {"pid", "create_time"}
        pids = [extra.pop("pid")]
        times = {pids[0]: float(extra.pop("create_time"))} if "create_time" in extra else {}
    else:  # a record that names no process (yet)
        pids, times = [], {}
    if not isinstance(pids, list) or not all(type(p) is int for p in pids):
        raise ValueError("pids must be a list of numbers")
    return Record(str(data.get("app_id") or name), pids, times, data.get("token"), extra)


def live_pids(record: Record) -> list[int]:
    """The record's pids that still run the processes it recorded (a reused pid is not ours)."""
    return [p for p in record.pids if is_ours(p, record.start_times.get(p))]


def forget(name: str, where: Path | None = None) -> None:
    _path(name, where).unlink(missing_ok=True)


def names(where: Path | None = None) -> list[str]:
    """The name of every record, readable or not, sorted."""
    folder = where or directory()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []


def records(where: Path | None = None) -> list[Record]:
    """Every readable record, by name."""
    return [r for n in names(where) if (r := load(n, where)) is not None]


def stop_record(record: Record, timeout: float = 10.0) -> list[int]:
    """Stop the process group of each of the record's pids, in its order; the pids that were running.

    A pid another process has now is left alone. A gone one is stopped too:
    what it forked may live on in its group, and procs.stop reaches only them.
    """
    live = live_pids(record)
    for pid in record.pids:
        if not reused(pid, record.start_times.get(pid)):
            procs.stop(pid, timeout=timeout)
    return live


def stop(name: str, timeout: float = 10.0, where: Path | None = None) -> list[int]:
    """Stop what the record ``name`` runs, then forget it (also an unreadable one); the pids stopped."""
    record = load(name, where)
    stopped = stop_record(record, timeout) if record else []
    forget(name, where)
    return stopped


def last_line(log_text: str) -> str:
    """The last non-empty line of a log (at most 300 characters), or "no output"."""
    lines = [line for line in log_text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


_TELLING = re.compile(r"\b(ERROR|FATAL|SEVERE)\b|\blevel=(error|fatal)\b")  # a log level, not any "Exception"


def telling_line(log_text: str) -> str:
    """Why a process exited, in one line: the first line of its log logged at an error level (a
    JVM logs a fatal error, then many lines of orderly shutdown) and its last line, or only its
    last line when none is."""
    last = last_line(log_text)
    for line in log_text.splitlines():
        if _TELLING.search(line):
            first = line.strip()[:300]
            return first if first == last else f"{first} (its last line: {last[:200]})"
    return last


def _at_once() -> bool:
    return True


@dataclass
class Managed:
    """One long-running process: what it runs, where its output goes, when it is ready.

    A ``Watched`` for ``wait_until``: it names why it exited once it has.
    """

    name: str  # in messages: "daprd", "placement", "it"
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    ready: Probe = _at_once
    reason: Callable[[str], str] = last_line  # its log's tail -> why it exited
    pid: int = 0
    started: float | None = None

    def spawn(self) -> int:
        """Start it in its own process group (procs.spawn); its pid."""
        self.pid = procs.spawn(self.argv, self.log, env=self.env, cwd=self.cwd).pid
        self.started = start_time(self.pid)
        return self.pid

    def running(self) -> bool:
        return bool(self.pid) and is_ours(self.pid, self.started)

    def exit_reason(self) -> str | None:
        if not self.pid or self.running():
            return None
        return f"{self.name} exited: {self.reason(procs.tail(self.log, 30))}"

    def waiting(self, fix: str | None = None) -> Waiting:
        return Waiting(self.ready, failed=self.exit_reason, fix=fix or f"see {self.log}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.pid and not reused(self.pid, self.started):
            procs.stop(self.pid, timeout=timeout)  # also when it is gone: what it forked may be left


def launch(
    record: Record,
    parts: Mapping[str, Managed],
    timeout: float,
    what: str,
    *,
    where: Path | None = None,
    progress: bool = False,
) -> None:
    """Start each part, recording it at once, then wait until every part is ready
    (``parts``: {what a failure names: process}). On any failure, an interrupt
    included, what started is stopped and the record forgotten."""
    try:
        for part in parts.values():
            part.spawn()
            record.add(part.pid, part.started)
            save(record, where)  # before waiting: a crash of this process leaves nothing unrecorded
        wait_all({label: part.waiting() for label, part in parts.items()}, timeout, what, progress)
    except BaseException:
        for part in parts.values():
            part.stop(timeout=5)
        forget(record.name, where)
        raise
