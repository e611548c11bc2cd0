"""A pytest plugin that records what each test and fixture costs.

Loaded by bench/suite_bench.py as ``-p suite_timing`` (with bench/ on
PYTHONPATH), so it can time any commit, even one from before it existed.
For every test phase (setup, call, teardown) and every fixture set-up it
appends one JSON line to $SUITE_TIMING_OUT: wall seconds and the machine's
busy CPU seconds over that span (all processes: kernels, sidecars and
brokers do the work, not pytest). Under pytest-xdist each worker appends its
own lines, and two spans on two workers can overlap, so machine CPU is then
shared between them.
"""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest

_OUT = os.environ.get("SUITE_TIMING_OUT")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def _busy_cpu() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def _write(record: dict) -> None:
    if not _OUT:
        return
    record["worker"] = _WORKER
    with open(_OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class _Span:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), _busy_cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, _busy_cpu() - self.cpu


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _timed(item, phase: str):
    with _Span() as span:
        yield
    _write(
        {
            "kind": "test",
            "phase": phase,
            "nodeid": item.nodeid,
            "module": _module(item.nodeid),
            "wall": span.wall,
            "cpu": span.cpu,
        }
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _timed(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _timed(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield from _timed(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    with _Span() as span:
        yield
    where = _module(request.node.nodeid) if fixturedef.scope != "session" else "(session)"
    _write(
        {
            "kind": "fixture",
            "name": fixturedef.argname,
            "scope": fixturedef.scope,
            "module": where,
            "baseid": fixturedef.baseid,
            "wall": span.wall,
            "cpu": span.cpu,
        }
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session, exitstatus):
    # The stack's stop and the topic clean-up run in session teardown, after every test.
    with _Span() as span:
        yield
    _write({"kind": "session", "phase": "finish", "wall": span.wall, "cpu": span.cpu})


def pytest_sessionstart(session):
    _write({"kind": "session", "phase": "start", "at": time.time()})
