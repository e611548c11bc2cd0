"""procs.run_bounded: a command's output read with a ceiling (a sandbox's answer, which the
learner's processes can write into). Real processes, no engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab_env.core import procs

FLOOD = "import sys\nwhile True: sys.stdout.write('x' * 65536)"


def test_an_answer_under_the_limit_comes_back_whole():
    done = procs.run_bounded(
        [sys.executable, "-c", "import sys; print(sys.stdin.read().upper()); print('err', file=sys.stderr)"],
        limit=1024,
        timeout=120,
        input=b"answer",
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"ANSWER\n", b"err\n")


def test_a_flood_is_cut_at_the_limit_and_the_command_killed():
    limit = 2**20
    done = procs.run_bounded([sys.executable, "-c", FLOOD], limit=limit, timeout=120)  # the timeout is a safety net
    assert done.returncode == -9
    assert len(done.stdout) <= limit
    assert done.stderr.decode().endswith(f"stopped: over {limit} bytes of output")


def test_a_flood_on_the_error_stream_is_cut_too():
    done = procs.run_bounded([sys.executable, "-c", FLOOD.replace("stdout", "stderr")], limit=4096, timeout=120)
    assert done.returncode == -9 and done.stdout == b""


def test_a_command_that_hangs_is_killed_at_its_timeout():
    with pytest.raises(subprocess.TimeoutExpired):
        procs.run_bounded([sys.executable, "-c", "import time; time.sleep(600)"], limit=4096, timeout=1)


def test_what_a_check_reads_of_a_learners_module_is_bounded_too(monkeypatch, tmp_path):
    monkeypatch.setattr(procs, "CAPTURE_LIMIT", 4096)
    done = procs.capture([sys.executable, "-c", FLOOD], cwd=tmp_path, timeout=120)
    assert done.returncode == -9 and len(done.stdout) <= 4096
    quiet = procs.capture([sys.executable, "-c", "import os; print(os.getcwd())"], cwd=tmp_path, timeout=120)
    assert (quiet.returncode, quiet.stdout.strip()) == (0, str(tmp_path))


def test_a_command_that_never_reads_its_input_is_still_stopped_at_its_timeout():
    with pytest.raises(subprocess.TimeoutExpired):  # 4 MiB fill the pipe: writing must not block the call
        procs.run_bounded(
            [sys.executable, "-c", "import time; time.sleep(600)"], limit=4096, timeout=1, input=b"x" * 2**22
        )


def test_a_child_left_holding_the_output_counts_as_a_timeout_not_an_answer():
    leaves_a_child = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])"
    with pytest.raises(subprocess.TimeoutExpired):
        procs.run_bounded([sys.executable, "-c", leaves_a_child], limit=4096, timeout=2)
