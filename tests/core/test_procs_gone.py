"""A killed process is gone only once every thread of it is: until then its sockets still accept."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time

import psutil
import pytest

from lab_env.core import procs
from lab_env.errors import LabEnvError

# The main thread leaves with the exit system call (60 on x86-64: this thread only), as a killed Go
# program's first thread may, while another thread keeps the listening socket open.
LEADER_LEAVES = """
import ctypes, socket, sys, threading, time
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(8)
print(server.getsockname()[1], flush=True)
threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()
ctypes.CDLL(None).syscall(60, 0)
"""


@pytest.mark.skipif(
    platform.machine() != "x86_64" or sys.platform != "linux", reason="the system call number is x86-64 Linux's"
)
def test_a_zombie_whose_threads_run_is_not_gone_until_they_are():
    proc = subprocess.Popen(
        [sys.executable, "-c", LEADER_LEAVES], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        port = int(proc.stdout.readline())
        deadline = time.monotonic() + 30  # a safety net: the leader leaves at once
        while procs.alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not procs.alive(proc.pid), "the leader thread did not exit"
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # its socket still accepts
        assert procs._wait_gone([psutil.Process(proc.pid)], 0.3) != [], "a zombie with a live thread counted as gone"
        procs.kill(proc.pid)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_process_that_outlives_its_sigkill_is_an_error_naming_it(monkeypatch):
    """kill's wait is a safety net: past it, the caller hears which pid is left (it would otherwise
    restart on ports still bound). This test's own process stands for one that SIGKILL did not end."""
    monkeypatch.setattr(procs, "KILLED_PATIENCE_S", 0.3)
    me = psutil.Process()
    with pytest.raises(LabEnvError, match=f"process {me.pid} still there"):
        procs._wait_killed([me])
    procs._wait_killed([])  # nothing left: no error
