"""Reading a topic back as records, and the partition a Java client picks for a key (murmur2)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from lab_env.errors import LabEnvError
from lab_env.runtime.kafka.admin import config, partition_count


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
