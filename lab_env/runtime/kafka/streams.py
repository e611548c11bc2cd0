"""Exactly-once stream processing with Kafka transactions: consume, update
state, produce, and commit the input offsets, all in one transaction.

Used by the supply-chain agents (lab 03, the capstone) and bench/kafka_bench.py.
Lab 03's learners write the same loop by hand first (Exercise 6); this is the
reusable version, plus the one thing the exercise leaves out: state.

State lives in a *changelog* topic written in the same transaction as the
outputs and offsets, and is rebuilt from it (read_committed) on start. So a
process killed at any instant restarts with state, outputs and offsets that
agree: what its last committed transaction left, nothing from the aborted one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab_env.runtime import kafka


@dataclass(frozen=True)
class Emit:
    """One output record: ``value`` (JSON-serialisable) to ``topic`` under ``key``."""

    topic: str
    key: str
    value: Any


@dataclass
class Processor:
    """What to consume, how to react, and where state lives."""

    name: str  # worker name: transactional.id, group.instance.id and client.id derive from it
    group: str
    inputs: Sequence[str]
    # handle(state, record) -> outputs; it may change state[key] for any key.
    handle: Callable[[dict[str, Any], kafka.Record], list[Emit]]
    changelog: str | None = None  # topic of state changes (key -> latest value)
    batch: int = 50
    state: dict[str, Any] = field(default_factory=dict)


def restore(changelog: str) -> dict[str, Any]:
    """State as the last committed transactions left it: the latest value per key."""
    return {r.key: r.value for r in kafka.read_topic(changelog, "read_committed") if r.key is not None}


def run(proc: Processor, on_batch: Callable[[int], None] = lambda n: None) -> None:
    """Process until SIGTERM (close cleanly) or SIGKILL (the next start recovers)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    kafka.exit_on_sigterm()
    producer = Producer(
        kafka.config(
            {
                "transactional.id": f"{proc.name}-tx",
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                # right after a commit the broker may still answer "concurrent
                # transactions"; the default 100 ms back-off then dominated
                # small batches (bench/results/kafka.md)
                "retry.backoff.ms": 10,
            }
        )
    )
    # Fences any earlier incarnation with this transactional.id and aborts its
    # open transaction, so the changelog below ends at its last commit.
    producer.init_transactions(120)  # a safety net: the coordinator answers slowly on a loaded broker
    if proc.changelog:
        proc.state.update(restore(proc.changelog))
    consumer = Consumer(
        kafka.config(
            {
                "group.id": proc.group,
                "client.id": proc.name,
                # Static membership: a restarted instance takes its partitions back at
                # once instead of waiting for the dead one's session to time out.
                "group.instance.id": proc.name,
                "session.timeout.ms": 10000,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
    )
    consumer.subscribe(
        list(proc.inputs),
        on_assign=lambda c, ps: print("assigned", sorted((p.topic, p.partition) for p in ps), flush=True),
    )
    try:
        while True:
            msgs = [m for m in consumer.consume(proc.batch, 0.5) if not m.error()]
            if not msgs:
                continue
            producer.begin_transaction()
            before = dict(proc.state)
            try:
                changed: set[str] = set()
                for msg in msgs:
                    record = kafka.Record.of(msg)
                    snapshot = dict(proc.state)
                    for emit in proc.handle(proc.state, record):
                        producer.produce(emit.topic, key=emit.key, value=json.dumps(emit.value))
                    changed |= {k for k in proc.state if proc.state.get(k) != snapshot.get(k)}
                if proc.changelog:
                    for key in sorted(changed):
                        producer.produce(proc.changelog, key=key, value=json.dumps(proc.state[key]))
                nexts: dict[tuple[str, int], int] = {}
                for msg in msgs:
                    # a consumed message always has its topic, partition and offset
                    nexts[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
                offsets = [TopicPartition(t, p, o) for (t, p), o in nexts.items()]
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
            except BaseException:  # also SIGTERM (SystemExit): never leave a transaction open
                proc.state.clear()
                proc.state.update(before)
                try:
                    producer.abort_transaction(30)
                except Exception as err:  # fenced or broken: the original error matters more
                    print(f"abort failed: {err}", flush=True)
                raise  # the process exits; a restart resumes from the last commit
            on_batch(len(msgs))
    finally:
        consumer.close()
