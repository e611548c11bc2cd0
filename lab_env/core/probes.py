"""Readiness probes and the one loop that waits on them.

A probe is a cheap call that returns True once a service really answers
(a Redis PING, an HTTP health endpoint, a Kafka metadata request). Waiting
means polling probes at a short interval until all pass or a deadline
passes; nothing here sleeps for a guessed start-up time.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from lab_env.errors import LabEnvError

Probe = Callable[[], bool]
POLL_INTERVAL_S = 0.1


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def http_ok(url: str) -> Probe:
    return lambda: (status := http_status(url)) is not None and 200 <= status < 300


def redis_ping(host: str, port: int) -> Probe:
    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return probe


def kafka_metadata(bootstrap: str) -> Probe:
    """True once the broker answers a metadata request (it has a controller)."""

    def probe() -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            meta = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=1.0)
        except Exception:  # KafkaException while the broker is still starting
            return False
        return meta.controller_id >= 0 and bool(meta.brokers)

    return probe


class Watched(Protocol):
    """A process a wait gives up on at once when it dies (an app, a worker)."""

    name: str

    def exit_reason(self) -> str | None:
        """None while it runs; once it has exited, why, e.g. "exited: <its log's last line>"."""
        ...


@dataclass
class Waiting:
    """One thing being waited for: its probe and a way to detect it died."""

    probe: Probe
    failed: Callable[[], str | None] = lambda: None  # returns a reason once it cannot succeed
    fix: str | None = None  # what to tell the user; default: look at its log
    died: str = "{name} failed to start: {reason}"  # the problem when ``failed`` gives a reason
    timed_out: Callable[[], str] | None = None  # the problem after the deadline (default: "<name> not ready ...")


def wait_all(
    items: Mapping[str, Waiting],
    timeout: float,
    what: str = "services",
    progress: bool = True,
    interval: float = POLL_INTERVAL_S,
) -> None:
    """Poll until every probe passes. Raises LabEnvError naming what is not ready.

    ``timeout`` is a safety net against what never comes, not a pace.
    """
    pending = dict(items)
    bar = _progress_bar(len(items), what) if progress else None
    deadline = time.monotonic() + timeout
    try:
        while pending:
            for name, item in list(pending.items()):
                reason = item.failed()
                if reason:
                    problem = item.died.format(name=name, reason=reason)
                    raise LabEnvError(problem, item.fix if item.fix is not None else f"see `lab-env logs {name}`")
                if item.probe():
                    del pending[name]
                    if bar is not None:
                        bar.set_postfix_str(f"{name} ready")
                        bar.update(1)
            if not pending:
                break
            if time.monotonic() > deadline:
                first = sorted(pending)[0]
                late = pending[first].timed_out
                raise LabEnvError(
                    late() if late else f"{', '.join(sorted(pending))} not ready after {timeout:.0f}s",
                    late_fix if (late_fix := pending[first].fix) is not None else f"see `lab-env logs {first}`",
                )
            time.sleep(interval)
    finally:
        if bar is not None:
            bar.close()


def wait_until(
    predicate: Probe,
    timeout: float,
    what: str,
    *,
    watch: Sequence[Watched] = (),
    fix: str | None = None,
    failure: str | Callable[[], str] | None = None,
    interval: float = POLL_INTERVAL_S,
) -> None:
    """The one wait: poll ``predicate`` until it is true.

    Fails at once, quoting the reason, when a process in ``watch`` exits;
    after ``timeout`` (a safety net, not a pace) with ``failure`` (a line, or a
    function computing it then) or "<what> not ready after N s". A check lets
    the LabEnvError through: the check decorator turns it into its verdict,
    with the check's hint when there is no ``fix``.
    """

    def exited() -> str | None:
        return next((f"{w.name} {r}" for w in watch if (r := w.exit_reason())), None)

    late = failure if callable(failure) or failure is None else (lambda: failure)
    fix = fix if fix is not None else ("" if failure is not None else _FIX)
    item = Waiting(predicate, failed=exited, fix=fix, died=f"waiting for {what}: {{reason}}", timed_out=late)
    wait_all({what: item}, timeout, what, progress=False, interval=interval)


_FIX = "it may still be on its way: wait a little and run the cell again, or read the app's log"


def _progress_bar(total: int, what: str):  # -> tqdm
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"starting {what}", unit="ready", leave=False)
