"""`lab-env up/down` and the clear errors for bad input, on the real stack."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from lab_env import LabEnvError, dapr_app, unique_name
from lab_env.core.paths import COMPONENTS_DIR, state_dir
from lab_env.stack import down, status, up
from lab_env.stack.components import render_components, validate_all

# serial: these stop the shared stack and look for any of its processes on the machine.
pytestmark = [pytest.mark.stack, pytest.mark.serial]
LAB_ENV = [sys.executable, "-m", "lab_env.cli.main"]


def _our_processes() -> list[psutil.Process]:
    """Processes whose command line points into the lab state dir or ~/.dapr."""
    marks = (str(state_dir()), "daprd", "dapr/bin/placement", "dapr/bin/scheduler", "kafka.Kafka", "redis-server")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if any(m in cmd for m in marks) and proc.pid != os.getpid():
            found.append(proc)
    return found


def test_up_twice_is_harmless_and_down_leaves_no_process():
    up(progress=False)
    pids = {s.name: s.pid for s in status()}
    assert up(progress=False) == []  # second up starts nothing
    assert {s.name: s.pid for s in status()} == pids

    from lab_env.runtime.clusters import native as native_cluster

    # A lab 05 notebook that failed before its last cell leaves its native cluster running.
    cluster = native_cluster.up(unique_name("left-home"))
    with dapr_app(unique_name("leftover")):
        # down also stops apps still running (a notebook that crashed, say), and that cluster
        stopped = down()
    assert set(stopped) >= {"redis", "kafka", "placement", "scheduler", f"cluster {cluster.name}"}
    assert _our_processes() == []
    assert all(s.state == "stopped" for s in status())
    up(progress=False)
    assert all(s.ready for s in status())


def test_busy_port_is_named_and_nothing_is_left_half_started():
    down()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 50006))  # the scheduler's port
    blocker.listen()
    try:
        with pytest.raises(LabEnvError) as err:
            up(progress=False)
        assert "port 50006 (scheduler grpc) is already in use by" in str(err.value)
        assert f"pid {os.getpid()}" in str(err.value)
        assert _our_processes() == []

        cli = subprocess.run([*LAB_ENV, "up"], capture_output=True, text=True)
        assert cli.returncode == 2
        assert cli.stderr.count("\n") == 1 and "port 50006" in cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        blocker.close()
    up(progress=False)


def test_missing_daprd_gives_one_line(tmp_path: Path):
    env = {**os.environ, "DAPR_HOME": str(tmp_path)}
    cli = subprocess.run([*LAB_ENV, "run", "--app-id", "x"], capture_output=True, text=True, env=env)
    assert cli.returncode == 2
    assert cli.stderr.strip() == "lab-env: daprd is not installed -> run `lab-env setup`"


def test_malformed_component_file_is_named(tmp_path: Path):
    shutil.copytree(COMPONENTS_DIR, tmp_path / "components")
    bad = tmp_path / "components" / "statestore.yaml"
    bad.write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n spec: [\n")
    with pytest.raises(LabEnvError, match=r"statestore.yaml line \d+ is not valid YAML"):
        validate_all(tmp_path / "components")

    no_type = tmp_path / "extra.yaml"
    no_type.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  version: v1\n"
    )
    with pytest.raises(LabEnvError, match="extra.yaml: a Component needs spec.type"):
        render_components(tmp_path / "out", extra=[no_type])
    # and an app given that file never starts
    with pytest.raises(LabEnvError, match="extra.yaml"):
        with dapr_app(unique_name("badcomp"), resources=[no_type]):
            pass
    assert not any("badcomp" in " ".join(p.cmdline()) for p in _our_processes())


def test_component_the_runtime_rejects_fails_with_its_reason(tmp_path: Path):
    """A well-formed file of an unknown type passes our check but not daprd's."""
    unknown = tmp_path / "mystery.yaml"
    unknown.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: mystery\n"
        "spec:\n  type: state.nosuchstore\n  version: v1\n  metadata: []\n"
    )
    with pytest.raises(LabEnvError) as err:
        with dapr_app(unique_name("mystery"), components=["mystery"], resources=[unknown], timeout=30):
            pass
    message = str(err.value)
    assert "\n" not in message
    assert "mystery" in message


def test_missing_prerequisite_is_one_line_naming_what_to_install(tmp_path: Path):
    # A PATH with Python but without Go (/usr/local/go/bin here).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "LAB_ENV_CACHE": str(tmp_path / "cache")}
    if any(Path(d, "go").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("this machine has go in /usr/bin")
    cli = subprocess.run([*LAB_ENV, "setup"], capture_output=True, text=True, env=env)
    assert cli.returncode == 2
    assert cli.stderr.startswith("lab-env: Go is not installed (it builds the Dapr runtime) -> install Go 1.26+")
    assert cli.stderr.count("\n") == 1


def test_doctor_is_green_on_the_live_stack_and_names_the_fix_when_not(tmp_path: Path):
    ok = subprocess.run([*LAB_ENV, "doctor"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    assert [line.split()[1] for line in ok.stdout.splitlines() if line.strip().startswith("ok")] == [
        "versions",
        "components",
        "stack",
        "round",
        "engine",  # optional: reported whether or not one answers
    ]

    broken = subprocess.run(
        [*LAB_ENV, "doctor"], capture_output=True, text=True, env={**os.environ, "DAPR_HOME": str(tmp_path)}
    )
    assert broken.returncode == 1
    assert "FAIL versions    daprd is missing, pinned" in broken.stdout
    assert "fix: run `lab-env setup`" in broken.stdout
    assert "FAIL round trip  skipped: the checks above must pass first" in broken.stdout
