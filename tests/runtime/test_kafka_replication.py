"""Kafka replication on a cluster of three real brokers (lab 03's section 8):
what ``acks`` promises when a leader dies, and what ``min.insync.replicas``
refuses when too few replicas are left. Each broker is a JVM of its own,
killed with SIGKILL; nothing is simulated.

The leader-loss drill is proven through lab 03's check: here it rejects
acks=1 because acknowledged orders are gone; in the solution notebook (nbval)
and in its grading it passes acks=all with nothing lost."""

from __future__ import annotations

import pytest

from lab_env.core.names import unique_name
from lab_env.labs.lab03_kafka import checks as lab03
from lab_env.runtime.kafka.replicated import BROKERS, start_cluster
from tests.grading.solution_mutations import rejected

pytestmark = pytest.mark.stack  # the Kafka jars and Java; not the stack's services


@pytest.fixture(scope="module")
def cluster():
    trio = start_cluster(unique_name("trio"))
    yield trio
    trio.stop()


def test_a_topic_has_three_replicas_all_in_sync(cluster):
    cluster.create_topic("placed", replicas=3, min_insync=2)
    placed = cluster.partition("placed")  # asked again until a broker that knows the topic answers
    assert sorted(placed.replicas) == list(BROKERS)
    assert sorted(placed.isr) == list(BROKERS) and placed.leader in BROKERS


def test_below_min_insync_replicas_acks_all_is_refused_and_acks_1_is_not(cluster):
    from confluent_kafka import KafkaError, Producer

    cluster.create_topic("guarded", replicas=3, min_insync=2)
    leader = cluster.partition("guarded").leader
    followers = [n for n in BROKERS if n != leader]
    for node in followers:
        cluster.kill(node)
    try:
        cluster.wait_isr("guarded", 1)
        outcomes: dict[str, object] = {}
        for acks in ("all", "1"):
            producer = Producer(cluster.config({"acks": acks, "message.timeout.ms": 10_000, "retries": 0}))
            producer.produce("guarded", b"x", on_delivery=lambda err, _msg, a=acks: outcomes.__setitem__(a, err))
            producer.flush(60)
        refused = outcomes["all"]
        assert isinstance(refused, KafkaError) and refused.code() == KafkaError.NOT_ENOUGH_REPLICAS, refused
        assert outcomes["1"] is None
    finally:
        cluster.restart(*followers)
    cluster.wait_isr("guarded", 3)


SAFE_TOPIC = {"replicas": 3, "min_insync": 2}


@pytest.mark.parametrize(
    ("topic", "producer", "because"),
    [
        (SAFE_TOPIC, {"acks": "1"}, "acknowledged orders are gone"),
        # The drill's cluster is not the producer's to choose: this one still writes to the trio, and loses.
        (SAFE_TOPIC, {"acks": "1", "bootstrap.servers": "127.0.0.1:9"}, "acknowledged orders are gone"),
        ({"replicas": 3, "min_insync": 1}, {"acks": "all"}, "min.insync.replicas=1"),
        ({"replicas": 2, "min_insync": 2}, {"acks": "all"}, "writes stop"),
        ({"replicas": 1, "min_insync": 1}, {"acks": "all"}, "the topic has 1 replica"),
    ],
    ids=["acks-1", "acks-1-elsewhere", "min-insync-1", "two-replicas", "one-replica"],
)
def test_lab03_replication_check_rejects_settings_that_lose_or_stop_writes(cluster, topic, producer, because):
    # The right settings pass in the solution notebook, under nbval and in its grading.
    rejected(lab03.replication, cluster, topic, producer, because=because)
