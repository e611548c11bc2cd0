"""The process registry (core.registry) on real processes, no stack: records are
owner-only and atomic, a corrupt one reads as nothing, a reused pid is never
ours, and stopping a record stops its whole process group."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

from lab_env.core import procs, registry
from lab_env.errors import LabEnvError


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))
    return tmp_path


@pytest.fixture
def spawned(tmp_path):
    """spawn(argv): a process group of our own, killed after the test whatever it asserted."""
    pids: list[int] = []

    def spawn(*argv: str) -> int:
        pid = procs.spawn(list(argv), tmp_path / f"spawned-{len(pids)}.log").pid
        pids.append(pid)
        return pid

    yield spawn
    for pid in pids:
        procs.kill(pid)


def _group(pgid: int) -> list[int]:
    """The live (not zombie) processes of group ``pgid``."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and procs.alive(p.pid):
                found.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_record_is_owner_only_written_whole_and_reads_back(spawned):
    pid = spawned("sleep", "60")
    old = os.umask(0)  # the most permissive umask: the mode must not come from it
    try:
        registry.save(registry.Record("shop-ab12cd", [pid], token="ab12cd", extra={"http_port": 3500}))
    finally:
        os.umask(old)
    path = registry.directory() / "shop-ab12cd.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in registry.directory().iterdir()] == ["shop-ab12cd.json"]  # no temporary file left
    on_disk = json.loads(path.read_text())
    assert on_disk["app_id"] == "shop-ab12cd" and on_disk["pids"] == [pid] and on_disk["http_port"] == 3500
    record = registry.load("shop-ab12cd")
    assert record is not None
    assert (record.name, record.pids, record.token, record.extra) == (
        "shop-ab12cd",
        [pid],
        "ab12cd",
        {"http_port": 3500},
    )
    assert record.start_times == {pid: psutil.Process(pid).create_time()}
    assert registry.live_pids(record) == [pid]
    assert registry.names() == ["shop-ab12cd"] and [r.name for r in registry.records()] == ["shop-ab12cd"]


@pytest.mark.parametrize(
    "text", ['{"app_id": "x", "pids": [1', "[1, 2]", '{"pids": "123"}', '{"pids": [true]}', "", "null"]
)
def test_a_corrupt_record_reads_as_none_and_stop_still_forgets_it(text):
    registry.directory().mkdir(parents=True)
    (registry.directory() / "broken.json").write_text(text)
    assert registry.load("broken") is None
    assert registry.records() == [] and registry.names() == ["broken"]
    assert registry.stop("broken") == []
    assert registry.names() == []


def test_a_missing_record_reads_as_none():
    assert registry.load("nobody") is None
    assert registry.stop("nobody") == []


def test_a_pid_whose_start_time_differs_is_not_ours_not_live_and_not_stopped(spawned):
    pid = spawned("sleep", "60")
    started = psutil.Process(pid).create_time()
    # What a record from an earlier process looks like once the kernel gave its pid to this one.
    registry.save(registry.Record("old-app", [pid], {pid: started - 1000}))
    record = registry.load("old-app")
    assert record is not None and record.start_times == {pid: started - 1000}
    assert not registry.is_ours(pid, started - 1000) and registry.reused(pid, started - 1000)
    assert registry.live_pids(record) == []
    assert registry.stop("old-app") == []
    assert procs.alive(pid), "a reused pid was signalled"
    assert registry.load("old-app") is None  # the stale record is forgotten all the same


def test_a_record_from_before_start_times_trusts_a_live_pid_and_stops_it(spawned):
    pid = spawned("sleep", "60")
    registry.directory().mkdir(parents=True)
    (registry.directory() / "legacy-ab12cd.json").write_text(json.dumps({"app_id": "legacy-ab12cd", "pids": [pid]}))
    record = registry.load("legacy-ab12cd")
    assert record is not None and record.start_times == {} and registry.live_pids(record) == [pid]
    assert registry.stop("legacy-ab12cd") == [pid]
    assert not procs.alive(pid)


def test_a_stack_pid_file_from_before_the_registry_reads_as_a_record(spawned, state):
    pid = spawned("sleep", "60")
    (state / "pids").mkdir()
    created = psutil.Process(pid).create_time()
    (state / "pids" / "redis.json").write_text(json.dumps({"pid": pid, "create_time": created}))
    record = registry.load("redis", state / "pids")
    assert record is not None and (record.pids, record.start_times) == ([pid], {pid: created})
    assert registry.live_pids(record) == [pid]


def test_stop_stops_the_whole_process_group(spawned):
    leader = spawned("sh", "-c", "sleep 60 & sleep 60")
    _wait_for(lambda: len([p for p in _group(leader) if psutil.Process(p).name() == "sleep"]) == 2)
    members = _group(leader)
    registry.save(registry.Record("pair", [leader]))
    assert registry.stop("pair", timeout=5) == [leader]
    assert [p for p in members if procs.alive(p)] == []
    assert _group(leader) == [] and registry.load("pair") is None


def test_launch_records_each_part_and_returns_once_all_are_ready(tmp_path):
    marker = tmp_path / "ready"
    parts = {
        "the sleeper": registry.Managed("sleeper", ["sleep", "60"], tmp_path / "sleeper.log"),
        "the toucher": registry.Managed(
            "toucher", ["sh", "-c", f"touch {marker}; sleep 60"], tmp_path / "toucher.log", ready=marker.exists
        ),
    }
    registry.launch(registry.Record("duo", token="ab12cd"), parts, 20, "duo")
    pids = [p.pid for p in parts.values()]
    record = registry.load("duo")
    assert record is not None and record.pids == pids and registry.live_pids(record) == pids
    assert registry.stop("duo", timeout=5) == pids
    assert not any(procs.alive(p) for p in pids)


def test_launch_fails_at_once_quoting_the_log_and_leaves_nothing(tmp_path):
    code = "import subprocess, sys; subprocess.Popen(['sleep', '60']); sys.exit('no config file')"
    crasher = registry.Managed("it", [sys.executable, "-c", code], tmp_path / "crash.log", ready=lambda: False)
    sleeper = registry.Managed("sleeper", ["sleep", "60"], tmp_path / "sleeper.log", ready=lambda: False)
    started = time.monotonic()
    with pytest.raises(LabEnvError) as err:
        registry.launch(registry.Record("crashy"), {"sleeper": sleeper, "crashy": crasher}, 30, "crashy")
    assert time.monotonic() - started < 15  # not the 30 s safety net
    assert err.value.problem == "crashy failed to start: it exited: no config file"
    assert registry.load("crashy") is None
    assert not procs.alive(sleeper.pid) and _group(crasher.pid) == []  # the orphaned `sleep` too


def test_run_feeds_stdin_and_returns_the_exit_code(tmp_path):
    code = "import sys; line = sys.stdin.readline(); print('got', line.strip()); sys.exit(3)"
    assert procs.run([sys.executable, "-c", code], tmp_path / "run.log", stdin=b"the job\n", timeout=30) == 3
    assert "got the job" in (tmp_path / "run.log").read_text()


def test_run_kills_the_whole_group_after_its_timeout(tmp_path):
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time;"
        "open(sys.argv[1], 'w').write(str(subprocess.Popen(['sleep', '60']).pid)); time.sleep(60)"
    )
    started = time.monotonic()
    assert procs.run([sys.executable, "-c", code, str(pidfile)], tmp_path / "run.log", stdin=b"", timeout=2) == -9
    assert time.monotonic() - started < 15
    assert not procs.alive(int(pidfile.read_text()))


def test_why_a_process_exited_is_its_first_error_not_its_last_words():
    kafka_like = "\n".join(
        [
            "[2026-12-07 08:29:01] INFO Starting controller (kafka.server.ControllerServer)",
            "[2026-12-07 08:29:02] ERROR [BrokerServer id=2] Fatal error during broker startup. Prepare to shutdown",
            "org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:23001",
            *[f"[2026-12-07 08:29:03] INFO shutting down part {n}" for n in range(40)],
            "[2026-12-07 08:29:04] INFO App info kafka.server for 2 unregistered",
        ]
    )
    told = registry.telling_line(kafka_like)
    assert told.startswith("[2026-12-07 08:29:02] ERROR [BrokerServer id=2] Fatal error"), told
    assert told.endswith("(its last line: [2026-12-07 08:29:04] INFO App info kafka.server for 2 unregistered)")
    assert registry.telling_line("INFO up\nINFO down\n") == "INFO down"  # no error: its last words
    assert registry.telling_line("") == "no output"
    # daprd's levels are lowercase; a handled exception logged under WARN is no error line.
    assert registry.telling_line('time=1 level=info msg="up"\ntime=2 level=fatal msg="no port"\n').endswith('no port"')
    handled = "WARN retrying\njava.io.IOException: Connection refused\nINFO stopped by a signal\n"
    assert registry.telling_line(handled) == "INFO stopped by a signal"
