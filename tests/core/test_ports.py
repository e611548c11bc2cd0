"""Ports for apps and sidecars: outside the ephemeral range, free, and never
handed to two callers at once (two graders run side by side)."""

from __future__ import annotations

import multiprocessing
import socket

import pytest

from lab_env.core import ports


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))


def test_ports_are_distinct_and_outside_the_ephemeral_range():
    low, high = ports.ephemeral_range()
    chosen = ports.free_ports(50)
    assert len(set(chosen)) == 50
    assert not [p for p in chosen if low <= p <= high]
    assert all(ports.usable(p) for p in chosen)


def _allocate(state: str, rounds: int, queue) -> None:
    import os

    os.environ["LAB_ENV_STATE"] = state
    got = []
    for _ in range(rounds):
        got += ports.free_ports(5)
    queue.put(got)


def test_two_processes_choosing_at_once_never_get_the_same_port(tmp_path):
    # 2 x 300 random ports from the host window (~3,200 here) would share many without the shared reservations.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_allocate, args=(str(tmp_path), 60, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    first, second = queue.get(timeout=120), queue.get(timeout=120)
    for w in workers:
        w.join(timeout=30)
    assert len(first) == len(second) == 300
    assert set(first).isdisjoint(second)
    assert len(set(first)) == 300


def test_a_reserved_port_is_not_chosen_again_until_its_reservation_ends(monkeypatch):
    (port,) = ports.free_ports(1)
    monkeypatch.setattr(ports, "window", lambda: range(port, port + 1))
    with pytest.raises(OSError, match="only 0 of 1 ports free"):
        ports.free_ports(1)
    later = ports.time.time() + ports.RESERVE_S + 1
    monkeypatch.setattr(ports.time, "time", lambda: later)
    assert ports.free_ports(1) == [port]


def test_a_port_someone_listens_on_is_not_chosen(monkeypatch):
    with socket.socket() as server:
        (port,) = ports.free_ports(1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not ports.usable(port)
        later = ports.time.time() + ports.RESERVE_S + 1
        monkeypatch.setattr(ports.time, "time", lambda: later)  # its reservation is over; the listener is not
        monkeypatch.setattr(ports, "window", lambda: range(port, port + 1))
        with pytest.raises(OSError, match="only 0 of 1"):
            ports.free_ports(1)


def test_a_held_port_is_reserved_again_from_the_moment_it_is_held(monkeypatch):
    # An app started long ago is killed for a drill: its ports are unbound until its restart binds them again.
    (port,) = ports.free_ports(1)
    monkeypatch.setattr(ports, "window", lambda: range(port, port + 1))
    killed_at = ports.time.time() + ports.RESERVE_S + 1  # its first reservation has run out
    monkeypatch.setattr(ports.time, "time", lambda: killed_at)
    ports.hold([port])
    with pytest.raises(OSError, match="only 0 of 1"):
        ports.free_ports(1)  # another caller, in the gap before the restart


def test_an_apps_crash_holds_every_port_it_will_restart_on(monkeypatch, tmp_path):
    from lab_env.runtime.apps import DaprApp

    chosen = ports.free_ports(5)
    app = DaprApp("held", chosen[1], chosen[2], chosen[0], tmp_path, internal_port=chosen[3])
    app.sidecar_argv = ["daprd", "--metrics-port", str(chosen[4])]
    assert sorted(app.ports()) == sorted(chosen)
    monkeypatch.setattr(app, "_sync", lambda: None)  # no record: nothing runs
    monkeypatch.setattr(app, "_save", lambda: None)
    later = ports.time.time() + ports.RESERVE_S + 1
    monkeypatch.setattr(ports.time, "time", lambda: later)
    app.crash()
    for port in chosen:  # none of its ports may be chosen
        monkeypatch.setattr(ports, "window", lambda port=port: range(port, port + 1))
        with pytest.raises(OSError, match="only 0 of 1"):
            ports.free_ports(1)
