"""The lab broker through confluent-kafka: client settings, topics, offsets, consumer groups, broker settings."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lab_env.core.profile import current
from lab_env.errors import LabEnvError


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


def consumer_groups() -> list[str]:
    """The id of every consumer group the broker knows."""
    client = admin()  # keep a reference: a collected client fails the request and lists no group at all
    result = client.list_consumer_groups(request_timeout=30).result(30)
    if result.errors:
        raise LabEnvError(f"Kafka did not list its consumer groups: {result.errors[0]}", "is it up? run `lab-env up`")
    return sorted(g.group_id for g in result.valid)


def delete_groups(names: Iterable[str]) -> None:
    """Delete consumer groups (each must have no live member: stop its consumers first)."""
    names = list(names)
    if names:
        client = admin()  # keep a reference: the futures fail if the client is collected
        for future in client.delete_consumer_groups(names, request_timeout=30).values():
            future.result(30)
