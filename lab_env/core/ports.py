"""Ports for the apps, sidecars and clusters lab-env starts, free and kept free.

A port the OS hands out with bind(0) comes from the ephemeral range, which
every outgoing connection also draws from: under load, a client socket took
such a port between choosing it and the sidecar binding it ("Port N is not
available"). So ports come from below the ephemeral range, where only
listeners live, and each one chosen is reserved for a while in a file every
lab-env process shares, so two graders choosing at once never pick the same.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lab_env.core.paths import state_dir

RESERVE_S = 300.0  # longer than any app takes to bind its ports; then its own listener holds them
HOST_SHARE = 4  # the host's own choices take the window's first quarter; graders' sandboxes share the rest
WINDOW_FLOOR = 20000  # the stack's fixed ports (6379, 9092, 5000x, 5xxxx) lie outside the window
_DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def window() -> range:
    """The ports to choose from: below the ephemeral range, or above it if that is too small.

    LAB_ENV_PORT_WINDOW=low-high narrows it: a grading sandbox has its own state folder, so its
    reservations cannot be seen by another's, and each takes its ports from its own slice."""
    narrowed = os.environ.get("LAB_ENV_PORT_WINDOW", "")
    if narrowed:
        first, _, last = narrowed.partition("-")
        return range(int(first), int(last) + 1)
    return host_window()


def host_window() -> range:
    """The ports chosen on the host (LAB_ENV_PORT_WINDOW unset): apart from ``sandbox_span()``, since
    a sandbox has its own reservations file and cannot see the host's."""
    whole = whole_window()
    return range(whole.start, whole.start + len(whole) // HOST_SHARE)


def sandbox_span() -> range:
    """The rest of the window, cut into grading sandboxes' slices (grading.sandbox.port_window)."""
    whole = whole_window()
    return range(whole.start + len(whole) // HOST_SHARE, whole.stop)


def whole_window() -> range:
    """``window()`` before any LAB_ENV_PORT_WINDOW narrows it."""
    low, high = ephemeral_range()
    if low - WINDOW_FLOOR >= 2000:
        return range(WINDOW_FLOOR, low)
    if 65535 - high >= 2000:
        return range(high + 1, 65536)
    return range(WINDOW_FLOOR, 30000)  # an unusual range: choose anyway, the bind test decides


def usable(port: int) -> bool:
    """Nothing holds ``port`` on any address, not even a closing connection.

    No SO_REUSEADDR, so this is at least as strict as any server that binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))  # bound, never listening: nothing is exposed
        except OSError:
            return False
    return True


def _reservations_file() -> Path:
    return state_dir() / "ports.reserved"


def _read(path: Path, now: float) -> dict[int, float]:
    held: dict[int, float] = {}
    try:
        for line in path.read_text().splitlines():
            port, _, until = line.partition(" ")
            if float(until) > now:
                held[int(port)] = float(until)
    except (OSError, ValueError):
        pass
    return held


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that are free now and reserved for this caller."""
    if count <= 0:
        return []
    candidates = window()
    with _reservations() as (held, now):
        chosen: list[int] = []
        for port in random.sample(candidates, len(candidates)):
            if port in held or port in chosen or not usable(port):
                continue
            chosen.append(port)
            if len(chosen) == count:
                break
        else:
            raise OSError(f"only {len(chosen)} of {count} ports free in {candidates.start}-{candidates.stop - 1}")
        held.update((port, now + RESERVE_S) for port in chosen)
    return chosen


def hold(ports: Iterable[int]) -> None:
    """Reserve ``ports`` again, now: a process that is killed or stopped to be started again on the same
    ports leaves them unbound for a while, and its first reservation may have run out long ago. Without
    this, another caller could choose one of them in that gap, and one of the two would fail to bind."""
    ports = [p for p in ports if p]
    if not ports:
        return
    with _reservations() as (held, now):
        held.update((port, max(held.get(port, 0.0), now + RESERVE_S)) for port in ports)


@contextmanager
def _reservations() -> Iterator[tuple[dict[int, float], float]]:
    """The live reservations, under the lock every lab-env process takes; what the caller adds is saved."""
    path = _reservations_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if this process dies
        now = time.time()
        held = _read(path, now)
        before = dict(held)
        yield held, now
        if held != before:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("".join(f"{port} {until:.0f}\n" for port, until in held.items()))
            tmp.replace(path)
