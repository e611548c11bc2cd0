"""Kafka for the labs: clients on the stack's broker, topics, reading a topic
back, consumer groups and lag, and Kafka's own command-line tools.

Notebooks, checks, worker processes and benches all use these, so a topic is
read back, and a lag computed, the same way everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lab_env.core.profile import current
from lab_env.errors import LabEnvError

# Kafka's CLI tools by the name of their shell script (without .sh).
TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "transactions": "org.apache.kafka.tools.TransactionsCommand",
    "producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
}


def bootstrap() -> str:
    """The broker address: from LAB_KAFKA_BROKERS (set in every app and worker), else the profile's."""
    return os.environ.get("LAB_KAFKA_BROKERS") or current().kafka_bootstrap


def config(settings: Mapping[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """Client settings on the lab broker. Keyword names use _ for . (group_id= is group.id).

    librdkafka logs warnings and errors only (log_level 4): its info lines
    ("Purging 1 unserved events ...") would land in notebook outputs.
    """
    return {
        "bootstrap.servers": bootstrap(),
        "log_level": 4,
        **(settings or {}),
        **{k.replace("_", "."): v for k, v in more.items()},
    }


def admin():  # -> AdminClient
    from confluent_kafka.admin import AdminClient

    return AdminClient(config())


def create_topics(
    partitions: Mapping[str, int], settings: Mapping[str, str] | None = None, timeout: float = 30
) -> None:
    """Create topics (name -> partition count) if they do not exist yet; wait until they do."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic

    new = [NewTopic(name, n, 1, config=dict(settings or {})) for name, n in partitions.items()]
    client = admin()  # keep a reference: the futures fail if the client is collected
    for name, future in client.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as err:
            code = err.args[0].code() if err.args and hasattr(err.args[0], "code") else None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise LabEnvError(f"cannot create topic {name}: {err}", "is Kafka up? run `lab-env status`") from err


def delete_topics(names: Iterable[str]) -> None:
    names = [n for n in names if n in topic_partitions_all()]
    if names:
        client = admin()
        for future in client.delete_topics(names, operation_timeout=30).values():
            future.result(30)


def topic_partitions_all() -> dict[str, int]:
    meta = admin().list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in meta.topics.items()}


def partition_count(topic: str) -> int:
    """Partitions of ``topic``, or 0 if there is no such topic."""
    # Ask for all topics: a metadata request naming one would auto-create it
    # (auto.create.topics.enable is on for Dapr), with the default partitions.
    meta = admin().list_topics(timeout=10).topics.get(topic)
    return 0 if meta is None or meta.error is not None else len(meta.partitions)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner (and librdkafka's murmur2_random) picks for ``key``."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    length = len(key)
    h = (seed ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = key[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any  # parsed JSON when the value is JSON, else the text
    timestamp: float = 0.0  # seconds since the epoch, as the producer stamped it

    @staticmethod
    def of(msg) -> Record:
        raw = msg.value()
        try:
            value: Any = json.loads(raw) if raw is not None else None
        except ValueError:
            value = raw.decode(errors="replace")
        key = msg.key()
        return Record(
            msg.topic(),
            msg.partition(),
            msg.offset(),
            key.decode(errors="replace") if key else None,
            value,
            msg.timestamp()[1] / 1000,
        )


def read_topic(topic: str, isolation: str = "read_committed", timeout: float = 60) -> list[Record]:
    """Every record of ``topic`` from the beginning to its current end, in
    partition then offset order. Uses no consumer group and commits nothing.

    With ``read_committed`` the end is the last stable offset: records of
    aborted or still-open transactions are skipped.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    n = partition_count(topic)
    if n == 0:
        return []
    consumer = Consumer(
        config(
            {
                "group.id": f"lab-env-reader-{os.getpid()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": isolation,
                # answer as soon as a partition's end is reached, not after 500 ms
                "fetch.wait.max.ms": 20,
            }
        )
    )
    records: list[Record] = []
    try:
        pending = set(range(n))
        for p in list(pending):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                pending.discard(p)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise LabEnvError(
                    f"reading {topic} took over {timeout:.0f} s (partitions {sorted(pending)} not at their end)",
                    "an open transaction holds back read_committed readers: stop or kill its producer",
                )
            for msg in consumer.consume(500, 0.05):
                if error := msg.error():
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise LabEnvError(f"reading {topic}: {msg.error()}", "run `lab-env status`")
                records.append(Record.of(msg))
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def end_offsets(topic: str) -> dict[int, int]:
    """Partition -> the offset the next record will get (the high watermark)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(config({"group.id": f"lab-env-offsets-{os.getpid()}", "enable.auto.commit": False}))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partition_count(topic))
        }
    finally:
        consumer.close()


def committed_offsets(group: str, topic: str) -> dict[int, int | None]:
    """Partition -> the group's committed offset (None where it never committed)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    n = partition_count(topic)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(n)])
    client = admin()
    result = client.list_consumer_group_offsets([request])[group].result(10)
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in result.topic_partitions}


@dataclass(frozen=True)
class GroupView:
    """A consumer group as the broker describes it."""

    group: str
    protocol: str  # "classic" or "consumer" (KIP-848)
    state: str
    members: dict[str, list[int]]  # client.id -> partitions assigned to it (sorted)


def describe_group(group: str, topic: str | None = None) -> GroupView:
    client = admin()
    result = client.describe_consumer_groups([group])[group].result(10)
    members: dict[str, list[int]] = {}
    for m in result.members:
        parts = m.assignment.topic_partitions if m.assignment else []
        members[m.client_id] = sorted(tp.partition for tp in parts if topic is None or tp.topic == topic)
    kind = getattr(result, "type", None)
    protocol = kind.name.lower() if kind is not None else "classic"
    return GroupView(group, protocol, result.state.name.lower(), dict(sorted(members.items())))


def broker_settings(*names: str) -> dict[str, str]:
    """The broker's current value of each named setting (its server.properties, as it runs)."""
    from confluent_kafka.admin import ConfigResource

    client = admin()
    futures = client.describe_configs([ConfigResource("BROKER", "1")])
    settings = next(iter(futures.values())).result(30)
    return {name: settings[name].value for name in names}


def exit_on_sigterm() -> None:
    """Make SIGTERM end the program through SystemExit, so `finally:` blocks
    run and a consumer closes (leaving its group at once) when stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def tool_command(tool: str, *args: str) -> list[str]:
    """The java command line of Kafka's ``tool`` (kafka-<tool>.sh) against the lab broker."""
    from lab_env.stack.provision.kafka import TOOLS_LOG4J2_CONFIG, java_command, kafka_installed

    if tool not in TOOLS:
        raise LabEnvError(f"unknown Kafka tool {tool!r}", f"use one of: {', '.join(TOOLS)}")
    if not kafka_installed():
        raise LabEnvError("Kafka is not installed", "run `lab-env setup`")
    args_list = list(args)
    given = any(a.startswith(("--bootstrap-server", "--broker-list")) or "bootstrap.servers" in a for a in args_list)
    if not given:
        args_list = ["--bootstrap-server", bootstrap(), *args_list]
    return java_command(TOOLS[tool], *args_list, log_config=TOOLS_LOG4J2_CONFIG)


def perf_rate(report: str) -> float:
    """Records per second from the summary line of producer-perf-test's output."""
    import re

    found = re.findall(r"records sent, ([0-9.]+) records/sec", report)
    if not found:
        raise LabEnvError("producer-perf-test printed no summary line", "run it in a terminal to see why")
    return float(found[-1])


def kafka_tool(tool: str, *args: str, check: bool = True) -> str:
    """Run Kafka's ``tool`` (as `kafka-<tool>.sh` would) and return what it printed."""
    proc = subprocess.run(tool_command(tool, *args), capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        last = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise LabEnvError(
            f"kafka {tool} failed: {last[-1][:300] if last else f'exit {proc.returncode}'}",
            f"run `lab-env kafka {tool} --help` for its options",
        )
    return proc.stdout
