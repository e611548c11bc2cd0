"""How the three-broker cluster reads a partition from its metadata: pure logic,
with the brokers' answers scripted. Each metadata request goes to whichever
broker the client picks, and brokers apply a new topic or a new leader at
slightly different moments; CI once read "replicas: []" from a broker that had
not applied a topic another broker had just reported. The live cluster's tests
are in test_kafka_replication.py."""

from __future__ import annotations

from pathlib import Path

from lab_env.runtime.kafka.replicated import Cluster, Partition

UNKNOWN = Partition(-1, [], [])
PLACED = Partition(2, [2, 3, 1], [2, 3, 1])


class Scripted(Cluster):
    """A cluster whose metadata answers come from a list, one per request."""

    def __init__(self, answers: list[Partition]) -> None:
        super().__init__("scripted", Path("/nonexistent"), {}, {})
        self.answers = answers
        self.asked = 0

    def _metadata(self, topic: str, index: int) -> Partition:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_a_broker_that_does_not_know_the_topic_yet_is_asked_again():
    cluster = Scripted([UNKNOWN, UNKNOWN, PLACED])
    assert cluster.partition("ledger") == PLACED
    assert cluster.asked == 3


def test_a_wait_returns_the_answer_it_saw_not_a_second_read():
    # ISR 3 from one broker, then a broker a step behind still reporting ISR 1
    behind = Partition(2, [2, 3, 1], [2])
    cluster = Scripted([behind, PLACED, behind])
    assert cluster.wait_isr("ledger", 3) == PLACED
    assert cluster.asked == 2


def test_placed_waits_for_a_leader():
    leaderless = Partition(-1, [2, 3, 1], [])
    cluster = Scripted([leaderless, PLACED])
    assert cluster.placed("ledger").leader == 2
