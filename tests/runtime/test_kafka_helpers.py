"""lab_env.runtime.kafka and lab_env.runtime.workers against the live broker: `lab-env kafka`,
the murmur2 partitioner, reading a topic back per isolation level, and
worker processes (ready, kill, restart, crash, fail-fast waits)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Producer

from lab_env import LabEnvError, unique_name
from lab_env.core.procs import alive
from lab_env.runtime import kafka
from lab_env.runtime.apps import apps_dir
from lab_env.runtime.workers import python_command, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.stack

LAB_ENV = Path(sys.executable).with_name("lab-env")  # the venv's console script


def _name(prefix: str) -> str:
    return unique_name(f"{prefix}-{secrets.token_hex(3)}")


@pytest.fixture
def topics():
    """Names of topics the test creates; deleted afterwards."""
    made: list[str] = []
    yield made
    kafka.delete_topics(made)


def _produce(producer: Producer, topic: str, items: list[tuple[str, object]]) -> None:
    errors: list[str] = []
    for key, value in items:
        producer.produce(
            topic,
            key=key.encode(),
            value=json.dumps(value).encode(),
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
    assert producer.flush(30) == 0
    assert errors == []


# --- lab-env kafka ----------------------------------------------------------


def test_lab_env_kafka_topics_list_shows_a_new_topic(topics):
    topic = _name("kh-list")
    kafka.create_topics({topic: 3})
    topics.append(topic)
    done = subprocess.run([str(LAB_ENV), "kafka", "topics", "--list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert topic in done.stdout.splitlines()


def test_lab_env_kafka_unknown_tool_is_a_one_line_error():
    done = subprocess.run([str(LAB_ENV), "kafka", "nosuchtool", "--list"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lab-env: ") and "nosuchtool" in lines[0] and "topics" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


# --- murmur2 ----------------------------------------------------------------


def _keys() -> list[str]:
    # Lengths 1..~12 cover every tail (0-3 bytes past a 4-byte block), plus multi-byte UTF-8.
    return [f"k{i}" + "x" * (i % 7) for i in range(48)] + ["ключ-é", "order-🙂"]


def test_murmur2_partition_matches_librdkafka_murmur2_random(topics):
    topic, control = _name("kh-murmur"), _name("kh-crc")
    kafka.create_topics({topic: 7, control: 7})
    topics += [topic, control]
    items = [(key, {"n": i}) for i, key in enumerate(_keys())]
    _produce(Producer(kafka.config(partitioner="murmur2_random")), topic, items)
    _produce(Producer(kafka.config()), control, items)  # librdkafka's default: consistent_random (CRC32)

    records = kafka.read_topic(topic)
    assert sorted(r.key for r in records) == sorted(_keys())
    assert len({r.partition for r in records}) > 1
    wrong = {r.key: r.partition for r in records if r.partition != kafka.murmur2_partition(r.key.encode(), 7)}
    assert wrong == {}

    # The check above can fail: another partitioner puts some key elsewhere.
    crc = kafka.read_topic(control)
    assert len(crc) == len(items)
    assert any(r.partition != kafka.murmur2_partition(r.key.encode(), 7) for r in crc)


# --- read_topic and transactions ---------------------------------------------


def test_read_topic_skips_aborted_records_only_when_read_committed(topics):
    topic = _name("kh-txn")
    kafka.create_topics({topic: 1})
    topics.append(topic)
    producer = Producer(kafka.config(transactional_id=_name("kh-txn-producer")))
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=f"c{i}".encode(), value=json.dumps({"committed": i}).encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(2):
        producer.produce(topic, key=f"a{i}".encode(), value=json.dumps({"aborted": i}).encode())
    assert producer.flush(30) == 0  # else abort_transaction purges them unsent and they never reach the log
    producer.abort_transaction(30)

    committed = kafka.read_topic(topic, isolation="read_committed")
    assert [r.value for r in committed] == [{"committed": i} for i in range(3)]
    everything = kafka.read_topic(topic, isolation="read_uncommitted")
    assert [r.value for r in everything] == [{"committed": i} for i in range(3)] + [{"aborted": i} for i in range(2)]


# --- workers ----------------------------------------------------------------


# The workers' scripts.
SLEEPER = 'import time\nprint("ready", flush=True)\ntime.sleep(300)\n'
CRASH = (
    'import subprocess\nsubprocess.Popen(["sleep", "300"])  # a child that must not outlive the failed start\n1 / 0\n'
)
SHORT = 'import sys, time\nprint("ready", flush=True)\ntime.sleep(1)\nsys.exit("gave up: no input")\n'


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _running_with(name: str) -> list[int]:
    """Pids of processes whose environment says WORKER_NAME=name."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("WORKER_NAME") == name and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def test_worker_kill_restart_and_stop(tmp_path):
    script = _script(tmp_path, "sleeper.py", SLEEPER)
    name = _name("kh-sleeper")
    record = apps_dir() / f"{name}.json"
    worker = start_worker(name, python_command(script), ready=r"ready", timeout=30)
    try:
        assert worker.alive() and worker.starts == 1
        assert json.loads(record.read_text())["pids"] == [worker.pid]
        first = worker.pid

        worker.kill()
        assert not worker.alive() and not alive(first)
        assert record.exists()  # killed, not stopped: still registered

        worker.restart(timeout=30)
        assert worker.alive() and worker.pid != first
        assert worker.starts == 2
        assert len(worker.log_lines(r"^ready$")) == 2
    finally:
        stop_worker(worker)
    assert not record.exists()
    assert _running_with(name) == []


def test_worker_that_crashes_at_once_is_an_error_quoting_its_log(tmp_path):
    script = _script(tmp_path, "crash.py", CRASH)
    name = _name("kh-crash")
    started = time.monotonic()
    with pytest.raises(LabEnvError) as err:
        start_worker(name, python_command(script), ready=r"ready", timeout=60)
    # Well before the 60 s limit: it did not wait for it (a loose bound, for a busy machine).
    assert time.monotonic() - started < 30
    assert "ZeroDivisionError" in str(err.value)
    assert not (apps_dir() / f"{name}.json").exists()
    assert _running_with(name) == []


def test_wait_for_fails_fast_when_a_worker_exits(tmp_path):
    script = _script(tmp_path, "short.py", SHORT)
    worker = start_worker(_name("kh-short"), python_command(script), ready=r"ready", timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(LabEnvError) as err:
            wait_for(lambda: False, timeout=120, what="something that never comes", workers=[worker])
        assert time.monotonic() - started < 60  # well before the 120 s limit, on a busy machine too
        assert worker.name in str(err.value) and "gave up: no input" in str(err.value)
    finally:
        stop_worker(worker)
