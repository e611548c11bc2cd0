"""Starting an app with its sidecar from the command line: `lab-env run` and
the stock Dapr CLI's `dapr run`, against the live stack."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from lab_env.core.paths import dapr_bin
from lab_env.core.ports import free_ports
from lab_env.core.probes import http_status, wait_until
from lab_env.core.procs import stop
from lab_env.core.profile import current
from lab_env.runtime.apps import load_app, running_apps, stop_app, unique_name
from lab_env.runtime.sidecar import health_url
from lab_env.stack.provision import install_dapr_cli

pytestmark = pytest.mark.stack


def _read_line(proc: subprocess.Popen, pattern: str, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(pattern, line)
        if match:
            return match
        if proc.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r}; exit {proc.poll()}")


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
def test_lab_env_run_starts_app_and_sidecar_and_ctrl_c_stops_both(apps_dir, inherited):
    # Started from a shell or a runner that ignores SIGINT, Ctrl-C must still stop it.
    app_id = unique_name("cli-run")
    lab_env_run = [sys.executable, "-m", "lab_env.cli", "run", "--app-id", app_id, "--components", "statestore"]
    subscriber = [sys.executable, "-m", "uvicorn", "subscriber:app", "--port", "{app_port}"]
    proc = subprocess.Popen(
        [*lab_env_run, "--", *subscriber],
        cwd=apps_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PUBSUB": "pubsub", "TOPIC": "unused"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )
    try:
        ports = _read_line(proc, r"sidecar http (\d+), grpc \d+, app (\d+)")
        http_port, app_port = int(ports[1]), int(ports[2])
        assert http_status(health_url(f"http://127.0.0.1:{http_port}")) == 204
        assert httpx.get(f"http://127.0.0.1:{app_port}/received").json() == []
        assert app_id in running_apps()
    finally:
        proc.send_signal(signal.SIGINT)
        # A safety net, not a criterion: stopping may take up to 2 x (8 s SIGTERM grace + 5 s) on a busy machine.
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()  # leave nothing running: its app and sidecar too
            stop_app(load_app(app_id))
            raise AssertionError("lab-env run did not stop on Ctrl-C") from None
    assert proc.returncode == 0
    assert app_id not in running_apps()
    assert http_status(health_url(f"http://127.0.0.1:{http_port}")) is None


def test_stock_dapr_cli_runs_a_sidecar_with_the_scheduler(tmp_path):
    install_dapr_cli()  # built on first use; cached after that
    app_id = unique_name("dapr-cli")
    http_port, grpc_port = free_ports(2)
    env = {**os.environ, **current().dapr_cli_env()}
    dapr_run = [str(dapr_bin("dapr")), "run", "--app-id", app_id]
    ports = ["--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port)]
    proc = subprocess.Popen(
        [*dapr_run, *ports, "--", sys.executable, "-c", "import time; time.sleep(120)"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        wait_until(lambda: http_status(health_url(f"http://127.0.0.1:{http_port}")) == 204, 60, "dapr run's sidecar")
        # A job is stored by the scheduler: this fails when daprd runs without one.
        job = httpx.post(
            f"http://127.0.0.1:{http_port}/v1.0-alpha1/jobs/{app_id}-job",
            json={"schedule": "@every 1h", "data": "hello"},
            timeout=10,
        )
        assert job.status_code == 204, job.text
        httpx.delete(f"http://127.0.0.1:{http_port}/v1.0-alpha1/jobs/{app_id}-job", timeout=10)
    finally:
        subprocess.run([str(dapr_bin("dapr")), "stop", "--app-id", app_id], capture_output=True, env=env, check=False)
        stop(proc.pid, timeout=10)  # the CLI, its app and its daprd share a process group
    assert http_status(health_url(f"http://127.0.0.1:{http_port}")) is None
