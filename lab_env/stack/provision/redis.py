"""redis-server: use the one on PATH, or install Debian's package as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lab_env.errors import LabEnvError

# Debian starts a freshly installed service unless policy-rc.d says no; the
# stack runs its own redis-server on 127.0.0.1, so the system one must not
# grab port 6379 first.
_POLICY_RC = Path("/usr/sbin/policy-rc.d")


def redis_server() -> str | None:
    return shutil.which("redis-server")


def install_redis() -> str:
    found = redis_server()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LabEnvError(
            "redis-server is not installed", "install it (`sudo apt-get install redis-server`, or `brew install redis`)"
        )
    print("Installing redis-server from Debian packages ...", flush=True)
    placed_policy = not _POLICY_RC.exists()
    if placed_policy:
        _POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        _POLICY_RC.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server", "redis-tools"],
        ):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LabEnvError(
                    f"`{' '.join(cmd)}` failed: {done.stderr.strip().splitlines()[-1:]}", "install redis-server by hand"
                )
    finally:
        if placed_policy:
            _POLICY_RC.unlink(missing_ok=True)
    found = redis_server()
    if not found:
        raise LabEnvError("redis-server still not on PATH after installing it", "install redis-server by hand")
    return found
