"""lab-env's own Docker engine, for real: started, a container run, a privileged one, stopped with nothing left.

No mocks: these start Debian's dockerd (as root, where `lab-env setup --containers`
installed it) through stack/engine, import a busybox image made from Debian's
busybox-static package, and run containers. They are marked `containers`:
tests/run_suite.py runs them in the full tier's second phase (LAB_ENV_CONTAINERS=0
leaves them out).
They skip where lab-env may not start its own engine (not root, no dockerd) or
where another engine already answers (two daemons would fight over docker0).
Run them alone: `LAB_ENV_CONTAINERS=1 pytest -m containers tests/stack/test_engine.py`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lab_env.stack import engine, runc_wrapper
from lab_env.stack.images import busybox

# serial: the tests that start lab-env's own engine share it, so they never run side by side.
pytestmark = [pytest.mark.containers, pytest.mark.serial]


def _ours() -> list[str]:
    """Processes of our daemon still running (zombies are gone already)."""
    names = ("dockerd", "containerd", "containerd-shim-runc-v2")
    return [
        f"{p.pid} {p.name()}"
        for p in psutil.process_iter(["name", "status"])
        if p.info["name"] in names and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture(scope="module")
def ours() -> Iterator[engine.Engine]:
    if os.environ.get("LAB_ENV_CONTAINERS") != "1":  # a plain `pytest` must not start a daemon
        pytest.skip("starts a real Docker engine: run with LAB_ENV_CONTAINERS=1")
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.skip("lab-env starts its own engine only as root with dockerd installed (`lab-env setup --containers`)")
    other = engine.find()
    if other is not None and not other.managed:
        pytest.skip(f"another Docker engine answers on {other.host}")
    started = time.perf_counter()
    found = engine.start()
    print(f"engine started in {time.perf_counter() - started:.2f} s")
    try:
        yield found
    finally:
        engine.stop()


def test_ours_answers_on_its_own_socket_and_not_the_default_one(ours):
    assert ours.managed and ours.host == engine.managed_host()
    assert engine.find() == ours
    assert not engine.answers(f"unix://{engine.DEFAULT_SOCKET}")
    about = engine.info(ours)
    assert about.runtime == engine.RUNTIME
    assert about.storage == "overlay2" and about.cgroup in ("1", "2")


def test_a_busybox_image_built_here_runs_a_container(ours):
    started = time.perf_counter()
    ref = busybox.ensure(ours, force=True)
    print(f"busybox imported in {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    assert ours.check("run", "--rm", ref, "echo", "hello") == "hello\n"
    print(f"container ran in {time.perf_counter() - started:.2f} s")


def test_a_privileged_container_runs_and_execs_through_the_wrapper(ours):
    ref = busybox.ensure(ours)
    name = "lab-env-test-privileged"
    ours.docker("rm", "-f", name)
    try:
        ours.check("run", "-d", "--name", name, "--privileged", ref, "sleep", "60")
        assert ours.check("exec", name, "id", "-u") == "0\n"
        assert ours.docker("exec", "--privileged", name, "true").returncode == 0
    finally:
        ours.docker("rm", "-f", name)
    assert engine.info(ours, ref).privileged is True
    if runc_wrapper.missing_caps():  # the trap the wrapper exists for is on this machine: plain runc falls in
        plain = ours.docker("run", "--rm", "--runtime", "runc", "--privileged", ref, "true")
        assert plain.returncode != 0 and "apply caps" in plain.stderr


def test_stop_leaves_no_process_mount_or_socket_and_keeps_the_images(ours):
    ref = busybox.ensure(ours)
    ours.docker("rm", "-f", "lab-env-test-left")  # a failed run's
    ours.check("run", "-d", "--name", "lab-env-test-left", ref, "sleep", "600")  # stop must stop it too
    ours.docker("rm", "-f", "lab-env-test-host-net")
    # A grading sandbox's network: dockerd mounts a handle on the host's namespace for it, and keeps it.
    ours.check("run", "-d", "--name", "lab-env-test-host-net", "--network", "host", ref, "sleep", "600")
    assert _ours()
    started = time.perf_counter()
    killed = engine.stop()
    print(f"engine stopped in {time.perf_counter() - started:.2f} s")
    assert killed == []  # dockerd stopped its containers and containerd by itself
    assert _ours() == []
    assert [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(engine.run_dir()) in line
    ] == []
    assert engine._mounts() == []
    assert not engine.run_dir().exists()
    assert engine.find() is None
    again = engine.start()
    try:
        assert busybox.built(again)  # the data root under the cache kept it
        again.check("rm", "-f", "lab-env-test-left")
    finally:
        engine.stop()
    assert _ours() == []
