"""kcat (kafkacat), a handy Kafka client for the shell: Debian's package,
installed as root when missing. Optional: setup never fails because of it."""

from __future__ import annotations

import os
import shutil
import subprocess

HOW_TO_GET = "install it to inspect Kafka from the shell (`sudo apt-get install kcat`, or `brew install kcat`)"


def kcat() -> str | None:
    return shutil.which("kcat")


def install_kcat() -> str | None:
    """kcat's path; installs it as root with apt-get, else prints one note. Never raises."""
    found = kcat()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"note: kcat is not installed: {HOW_TO_GET}", flush=True)
        return None
    print("Installing kcat from Debian packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "kcat"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            print(f"note: `{' '.join(cmd)}` failed ({err}); kcat is optional: {HOW_TO_GET}", flush=True)
            return None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            print(f"note: `{' '.join(cmd)}` failed ({last[:200]}); kcat is optional: {HOW_TO_GET}", flush=True)
            return None
    found = kcat()
    if not found:
        print(f"note: kcat is still not on PATH after installing it: {HOW_TO_GET}", flush=True)
    return found
