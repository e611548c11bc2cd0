"""Kafka for the labs: the broker's clients and admin (``admin``), reading a topic back and the
partitioner (``records``), Kafka's own tools (``tools``), and stream processing (``streams``).

Notebooks, checks, worker processes and benches all use these, so a topic is read back, and a
lag computed, the same way everywhere: ``from lab_env.runtime import kafka; kafka.read_topic(...)``.
"""

from lab_env.runtime.kafka.admin import (
    GroupView,
    admin,
    bootstrap,
    broker_settings,
    committed_offsets,
    config,
    consumer_groups,
    create_topics,
    delete_groups,
    delete_topics,
    describe_group,
    end_offsets,
    partition_count,
    topic_partitions_all,
)
from lab_env.runtime.kafka.records import Record, murmur2_partition, read_topic
from lab_env.runtime.kafka.tools import TOOLS, exit_on_sigterm, kafka_tool, perf_rate, tool_command

__all__ = [
    "TOOLS",
    "GroupView",
    "Record",
    "admin",
    "bootstrap",
    "broker_settings",
    "committed_offsets",
    "config",
    "consumer_groups",
    "create_topics",
    "delete_groups",
    "delete_topics",
    "describe_group",
    "end_offsets",
    "exit_on_sigterm",
    "kafka_tool",
    "murmur2_partition",
    "partition_count",
    "perf_rate",
    "read_topic",
    "tool_command",
    "topic_partitions_all",
]
