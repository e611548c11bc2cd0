"""Lab 03's checks fail on wrong answers, each with its own message, against
the real broker. (The right answers pass in the solution notebook, under
nbval; the unsolved stubs fail in tests/labs/test_labs.py.)"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from lab_env.labs.checks import verdict
from lab_env.labs.lab03_kafka import checks as lab03
from lab_env.marketplace.agents import supply_chain
from lab_env.runtime import kafka
from lab_env.runtime.apps import unique_name
from tests.grading.solution_mutations import rejected

pytestmark = pytest.mark.stack


def _topic(prefix: str, partitions: int) -> str:
    name = f"{unique_name(prefix)}-{secrets.token_hex(2)}"
    kafka.create_topics({name: partitions})
    return name


def _produce(topic: str, records: list[tuple[str, dict]], **settings) -> None:
    producer = Producer(kafka.config(settings))
    for key, value in records:
        producer.produce(topic, key=key, value=json.dumps(value))
    producer.flush(30)


ORDERS = [{"order": f"o-{i:03d}", "sku": f"sku-{i % 5}", "seq": i // 5, "qty": 1} for i in range(60)]


def test_create_topic_waits_for_a_topic_the_controller_is_still_creating():
    # The controller may answer before the broker's metadata shows the topic
    # (CI once failed the solution so); a topic that appears a moment later passes.
    def create_soon(name: str, partitions: int) -> None:
        if kafka.partition_count(name):  # the check's second call: nothing to do
            return
        timer = threading.Timer(1.0, kafka.create_topics, ({name: partitions},))
        timer.start()

    assert verdict(lab03.create_topic, create_soon).passed


def test_create_topic_rejects_an_answer_that_creates_nothing(monkeypatch):
    monkeypatch.setattr(lab03, "TOPIC_PATIENCE", 3.0)  # the safety net, shortened for a topic that never comes
    rejected(lab03.create_topic, lambda name, partitions: None, because="the broker has no such topic")


def test_keyed_orders_rejects_librdkafkas_default_partitioner():
    topic = _topic("t-keyed", 6)
    _produce(topic, [(o["sku"], o) for o in ORDERS])  # consistent_random (CRC32), not murmur2
    rejected(lab03.keyed_orders, topic, ORDERS, because="murmur2")


def test_keyed_orders_passes_murmur2_and_rejects_missing_orders():
    topic = _topic("t-keyed", 6)
    _produce(topic, [(o["sku"], o) for o in ORDERS[:50]], partitioner="murmur2_random")
    rejected(lab03.keyed_orders, topic, ORDERS, because="10 of 60 orders are not in the topic")
    _produce(topic, [(o["sku"], o) for o in ORDERS[50:]], partitioner="murmur2_random")
    assert verdict(lab03.keyed_orders, topic, ORDERS).passed


def test_consumer_lag_rejects_ignoring_partitions_never_committed():
    def lag_of_committed_only(group: str, topic: str) -> dict[int, int]:
        consumer = Consumer(kafka.config(group_id=group, enable_auto_commit=False))
        try:
            parts = consumer.committed(
                [TopicPartition(topic, p) for p in range(kafka.partition_count(topic))], timeout=10
            )
            return {
                tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] - tp.offset
                for tp in parts
                if tp.offset >= 0
            }
        finally:
            consumer.close()

    rejected(lab03.consumer_lag, lag_of_committed_only, because="expected {0: 6, 1: 0, 2: 30}")


def test_assignment_rejects_an_answer_that_is_not_the_brokers():
    def everything_to_one(group: str) -> dict[str, list[int]]:
        admin = AdminClient(kafka.config())  # referenced until the future is done
        desc = admin.describe_consumer_groups([group])[group].result(30)
        return {desc.members[0].client_id: [0, 1, 2, 3]}

    rejected(lab03.assignment, everything_to_one, because="but the broker says")


def test_idempotent_handler_rejects_a_handler_that_books_twice(tmp_path):
    module = tmp_path / "ledger.py"
    module.write_text(
        "import sqlite3\n"
        "def open_ledger(path):\n"
        "    conn = sqlite3.connect(path)\n"
        "    conn.execute('CREATE TABLE IF NOT EXISTS applied (order_id TEXT, qty INTEGER)')\n"
        "    return conn\n"
        "def apply_once(conn, order):\n"
        "    with conn:\n"
        "        conn.execute('INSERT INTO applied VALUES (?, ?)', (order['order'], order['qty']))\n"
        "    return True\n"
    )
    db = tmp_path / "ledger.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE applied (order_id TEXT, qty INTEGER)")
        conn.executemany("INSERT INTO applied VALUES (?, 1)", [("a",), ("b",), ("b",)])
    rejected(lab03.idempotent_handler, module, db, ["a", "b", "c"], because="applied 2 times")


def test_tally_counts_lost_and_doubled(tmp_path):
    db = tmp_path / "ledger.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE applied (order_id TEXT, qty INTEGER)")
        conn.executemany("INSERT INTO applied VALUES (?, 1)", [("a",), ("b",), ("b",)])
    assert lab03.tally(db, ["a", "b", "c"]) == {"once": 1, "lost": 1, "duplicated": 1}


def test_exactly_once_rejects_doubled_and_missing_invoices():
    orders, invoices = _topic("t-eos-in", 2), _topic("t-eos-out", 2)
    _produce(orders, [(o["sku"], o) for o in ORDERS[:10]])
    _produce(invoices, [(o["sku"], {"order": o["order"]}) for o in ORDERS[:10] + ORDERS[:1]])
    rejected(lab03.exactly_once, orders, invoices, because="1 orders were invoiced twice")

    orders2, invoices2 = _topic("t-eos-in", 2), _topic("t-eos-out", 2)
    _produce(orders2, [(o["sku"], o) for o in ORDERS[:10]])
    _produce(invoices2, [(o["sku"], {"order": o["order"]}) for o in ORDERS[:7]])
    rejected(lab03.exactly_once, orders2, invoices2, because="3 of 10 orders have no committed invoice")


def test_supply_chain_audit_finds_double_counting_and_bad_stock():
    chain = supply_chain.chain_topics(f"{unique_name('t-chain')}-{secrets.token_hex(2)}")
    supply_chain.create_chain(chain, partitions=1)
    _produce(
        chain["demand"],
        [("kite", {"id": "d-1", "sku": "kite", "qty": 3}), ("kite", {"id": "d-2", "sku": "kite", "qty": 2})],
    )
    filled = {"demand": "d-1", "sku": "kite", "qty": 3, "shipped": 3, "backordered": 0}
    _produce(chain["fulfilment"], [("kite", filled), ("kite", filled)])  # d-1 twice, d-2 never
    _produce(chain["stock"], [("kite", {"stock": supply_chain.INITIAL_STOCK - 3, "on_order": 0})])
    problems = supply_chain.audit(chain)["problems"]
    assert "1 demands fulfilled or backordered missing (e.g. d-2)" in problems
    assert "1 demands fulfilled or backordered counted twice (e.g. d-1)" in problems
    assert any(p.startswith("kite: stock 27 != 30 + 0 shipped in - 6 shipped out") for p in problems), problems
    rejected(lab03.supply_chain_books, chain, because="the books do not balance")
