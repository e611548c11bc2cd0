"""`lab-env reset NN`: a real run of lab 02 in a kernel, reset, and run again clean.

The run's leftovers are what the stack really holds (Redis streams and keys,
its workspace); a Kafka topic and group and a running process are added under
the run's token, beside names of another run that must survive."""

from __future__ import annotations

import json
import shutil

import pytest

from lab_env.core.profile import current
from lab_env.core.resp import RedisConnection
from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs import course
from lab_env.labs.reset import of_runs, reset
from lab_env.notebooks.workspace import folder_of_run
from lab_env.runtime import kafka
from lab_env.runtime.workers import python_command, start_worker

LOOP = "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(1)\n"


def test_names_of_a_run_are_told_apart_from_a_longer_token_and_other_runs():
    ours = of_runs(["ab12cd"])
    assert ours("market-ab12cd") and ours("market-ab12cd||ProductActor-ab12cd||x") and ours("chk-x-1f2e3d-ab12cd")
    assert not ours("market-ab12cd0") and not ours("market-ab12ce") and not ours("ab12cd") and not ours("")
    assert not of_runs([])("market-ab12cd")


def _keys(token: str) -> list[str]:
    prof = current()
    with RedisConnection(prof.redis_host, prof.redis_port) as redis:
        return [k for k in redis.scan(f"*{token}*") if of_runs([token])(k)]


def _empty_group(group: str, topic: str) -> None:
    """A consumer group with a committed offset and no member left (what a closed consumer leaves)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka.config(group_id=group))
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    consumer.close()


def _run_lab(tmp_path, name: str) -> None:
    from lab_env.grading.execute import execute

    notebook = tmp_path / name
    shutil.copy(SOLUTIONS_DIR / "02_pubsub.ipynb", notebook)
    execute(notebook)  # raises on any failing cell: every check passed


@pytest.mark.stack
def test_a_lab_run_is_reset_and_runs_again_clean(tmp_path, monkeypatch):
    record = tmp_path / "progress.json"
    monkeypatch.setenv("LAB_ENV_PROGRESS_FILE", str(record))  # the kernels inherit it
    _run_lab(tmp_path, "first.ipynb")
    (token,) = course.runs_of("02")
    other = token[:5] + ("0" if token[5] != "0" else "1")  # another run's token, one digit apart
    left_by_lab = _keys(token)
    assert left_by_lab, "lab 02 left no Redis keys: the test would prove nothing"
    assert folder_of_run(token).exists()

    # What other labs' steps leave, under this run's token, and another run's names beside them.
    kafka.create_topics({f"reset-orders-{token}": 1, f"reset-orders-{other}": 1})
    _empty_group(f"reset-group-{token}", f"reset-orders-{token}")
    _empty_group(f"reset-group-{other}", f"reset-orders-{other}")
    assert {f"reset-group-{token}", f"reset-group-{other}"} <= set(kafka.consumer_groups())
    prof = current()
    with RedisConnection(prof.redis_host, prof.redis_port) as redis:
        redis.command("SET", f"reset-kept-{other}", "1")
        redis.command("SET", f"reset-kept-{token}0", "1")  # a longer token: not this run's
    worker = start_worker(
        f"reset-agent-{token}", python_command("-c", LOOP), ready="ready", env={"LAB_RUN_TOKEN": token}, timeout=60
    )
    record_before = json.loads(record.read_text())["02"]

    try:
        outcome = reset("2")  # a lab's number as a learner may type it
        assert outcome.failed == {}
        done = {step.step: step.names for step in outcome.removed}
        assert f"reset-agent-{token}" in done["apps"] and not worker.alive()
        assert set(done["state"]) == set(left_by_lab) and _keys(token) == []
        assert f"reset-orders-{token}" in done["kafka"] and f"group reset-group-{token}" in done["kafka"]
        topics = kafka.topic_partitions_all()
        assert f"reset-orders-{token}" not in topics and f"reset-orders-{other}" in topics
        groups = kafka.consumer_groups()
        assert f"reset-group-{token}" not in groups and f"reset-group-{other}" in groups
        assert done["files"] == [folder_of_run(token).name] and not folder_of_run(token).exists()
        with RedisConnection(prof.redis_host, prof.redis_port) as redis:
            assert redis.command("EXISTS", f"reset-kept-{other}", f"reset-kept-{token}0") == 2
        assert json.loads(record.read_text())["02"] == record_before, "reset keeps the learner's progress"
        assert course.runs_of("02") == [] and reset("02").removed == []  # forgotten: nothing left to do

        _run_lab(tmp_path, "again.ipynb")  # the lab runs again, every check passing
        (again,) = course.runs_of("02")
        assert again != token
    finally:
        kafka.delete_topics([f"reset-orders-{other}"])
        kafka.delete_groups([f"reset-group-{other}"])
        with RedisConnection(prof.redis_host, prof.redis_port) as redis:
            redis.command("DEL", f"reset-kept-{other}", f"reset-kept-{token}0")
        reset("02")
