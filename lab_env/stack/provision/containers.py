"""`lab-env setup --containers`: Debian's docker.io as root with apt; elsewhere, one line saying what to do."""

from __future__ import annotations

import os
import shutil
import subprocess

from lab_env.core import registry
from lab_env.errors import LabEnvError
from lab_env.stack.provision.redis import _POLICY_RC

PACKAGES = ["docker.io", "docker-compose", "mmdebstrap", "tini"]  # tini: PID 1 of a grading sandbox
ELSEWHERE = "install Docker (Docker Desktop, or your system's docker.io package), then re-run"


def install_containers() -> str:
    """Install the engine unless dockerd is on PATH; what was done, in one line.

    Not root or no apt: a LabEnvError naming what to install instead.
    """
    if all(shutil.which(tool) for tool in ("dockerd", "docker", "docker-compose", "mmdebstrap", "tini")):
        return "docker.io, docker-compose, mmdebstrap and tini already installed"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LabEnvError("Docker is not installed and lab-env installs it only as root with apt", ELSEWHERE)
    print(f"Installing {', '.join(PACKAGES)} from Debian packages ...", flush=True)
    # Debian's postinst would start the system dockerd on /var/run/docker.sock: lab-env
    # starts its own (`lab-env engine up`) where nothing surprises kind or the user.
    placed_policy = not _POLICY_RC.exists()
    if placed_policy:
        _POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        _POLICY_RC.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LabEnvError(f"`{' '.join(cmd)}` failed: {registry.last_line(done.stderr)}", ELSEWHERE)
    finally:
        if placed_policy:
            _POLICY_RC.unlink(missing_ok=True)
    return "installed docker.io: `lab-env engine up` starts its daemon"
