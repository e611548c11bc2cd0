"""Checks for lab 03: event streams with Apache Kafka.

Every check judges what is on the broker (topics, offsets, groups), in a
ledger file, or what a learner's function answers about a topic or a group
the check made itself. Nothing is taken from the notebook's variables, so
the grader runs the same checks from its own process.
"""

from __future__ import annotations

import sqlite3
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab_env.core import procs
from lab_env.core.probes import wait_until
from lab_env.labs.checks import call_learner, check, fresh
from lab_env.marketplace.agents import supply_chain
from lab_env.runtime import kafka, sidecar
from lab_env.runtime.apps import DaprApp, unique_name
from lab_env.runtime.kafka.replicated import BROKERS, Cluster, leader_loss
from lab_env.runtime.workers import python_command, start_worker, stop_worker

# Safety nets against a wrong answer that never finishes; a right answer
# returns in well under a second (function calls) or a few seconds (groups).
CALL_PATIENCE = 60.0
GROUP_PATIENCE = 90.0
TOPIC_PATIENCE = 30.0  # a created topic shows in the broker's metadata within a second
ORDERS_IN_DRILL = 100  # written while the leader alone has them, then the leader is killed


@check(
    "topics",
    hint="admin.create_topics([NewTopic(name, num_partitions=..., replication_factor=1)]) on an AdminClient kept "
    "in a variable, then wait on the future; a TOPIC_ALREADY_EXISTS error is fine",
)
def create_topic(create: Callable[[str, int], None]) -> str:
    topic = fresh(unique_name("chk-topic"))
    try:
        call_learner(create, topic, 5, timeout=CALL_PATIENCE, what="create_topic")
        # Without an operation_timeout the controller answers once creation has
        # started; the broker's metadata may show the topic a moment later.
        wait_until(
            lambda: kafka.partition_count(topic) > 0,
            TOPIC_PATIENCE,
            f"topic {topic}",
            failure=f"create_topic({topic!r}, 5) returned, but the broker has no such topic",
        )
        got = kafka.partition_count(topic)
        assert got == 5, f"create_topic({topic!r}, 5) made {got} partitions"
        try:
            call_learner(create, topic, 5, timeout=CALL_PATIENCE, what="create_topic")
        except Exception as err:
            raise AssertionError(
                f"creating a topic that exists raised {type(err).__name__}: re-running a cell must work"
            ) from None
    finally:
        kafka.delete_topics([topic])
    return "5 partitions, and creating it again is harmless"


@check(
    "keyed orders",
    hint="Producer({..., 'partitioner': 'murmur2_random'}); produce(topic, key=order['sku'], "
    "value=json.dumps(order)) for each order, then flush()",
)
def keyed_orders(topic: str, orders: list[dict[str, Any]]) -> str:
    records = kafka.read_topic(topic)
    assert records, f"no orders in {topic} yet"
    n = kafka.partition_count(topic)
    by_id = Counter(r.value.get("order") if isinstance(r.value, dict) else None for r in records)
    missing = [o["order"] for o in orders if by_id[o["order"]] == 0]
    assert not missing, (
        f"{len(missing)} of {len(orders)} orders are not in the topic (e.g. {missing[0]}): flush() before returning"
    )
    twice = [i for i, c in by_id.items() if c > 1]
    assert not twice, f"{len(twice)} orders are in the topic more than once (e.g. {twice[0]})"
    for r in records:
        assert r.key == r.value.get("sku"), f"order {r.value.get('order')} has key {r.key!r}; the key must be its sku"
        want = kafka.murmur2_partition((r.key or "").encode(), n)
        assert r.partition == want, (
            f"key {r.key!r} is in partition {r.partition}, but Java clients put it in {want}: "
            "use the murmur2 partitioner"
        )
    per_key: dict[str, list[int]] = defaultdict(list)
    for r in records:  # partition, then offset order
        per_key[r.key or ""].append(r.value["seq"])
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"orders of {key} are out of order in their partition: produce them in sequence"
    return f"{len(records)} orders, {len(per_key)} keys, each key in one partition and in order"


@check(
    "group assignment",
    hint="admin.describe_consumer_groups([group])[group].result() on an AdminClient you keep in a variable "
    "until the future is done (a client collected early fails its futures); for each member, "
    "member.client_id -> sorted partitions of member.assignment.topic_partitions",
)
def assignment(learner_assignment: Callable[[str], dict[str, list[int]]]) -> str:
    topic, group = fresh(unique_name("chk-assign")), fresh(unique_name("chk-group"))
    kafka.create_topics({topic: 4})
    members = []
    try:
        for label in ("m1", "m2"):
            members.append(
                start_worker(
                    fresh(unique_name(f"chk-{label}")),
                    python_command("-m lab_env.marketplace.agents.group_member", "--group", group, "--topic", topic),
                    ready=r"assigned \[\d",
                )
            )
        wait_until(
            lambda: _stable_two(group), GROUP_PATIENCE, "a group of two members with 2 partitions each", watch=members
        )
        truth = kafka.describe_group(group).members
        got = call_learner(learner_assignment, group, timeout=CALL_PATIENCE, what="assignment")
        assert isinstance(got, dict), (
            f"assignment() returned {type(got).__name__}, expected a dict client.id -> partitions"
        )
        got = {str(k): sorted(int(p) for p in v) for k, v in got.items()}
        assert got == truth, f"assignment({group!r}) returned {got}, but the broker says {truth}"
    finally:
        for m in members:
            stop_worker(m)
        kafka.delete_topics([topic])
    return "matches the broker's view of a two-member group"


def _stable_two(group: str) -> bool:
    view = kafka.describe_group(group)
    return view.state == "stable" and len(view.members) == 2 and sorted(map(len, view.members.values())) == [2, 2]


@check(
    "consumer lag",
    hint="committed offsets from Consumer({'group.id': group}).committed([...]); end offsets from "
    "get_watermark_offsets(tp)[1]; lag = end - committed (a partition with no commit: end - low)",
)
def consumer_lag(learner_lag: Callable[[str, str], dict[int, int]]) -> str:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic, group, idle = (
        fresh(unique_name("chk-lag")),
        fresh(unique_name("chk-lag-group")),
        fresh(unique_name("chk-idle-group")),
    )
    kafka.create_topics({topic: 3})
    try:
        producer = Producer(kafka.config())
        for partition, count in enumerate((10, 20, 30)):
            for _ in range(count):
                producer.produce(topic, value=b"x", partition=partition)
        producer.flush(30)
        consumer = Consumer(kafka.config(group_id=group, enable_auto_commit=False))
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 20)], asynchronous=False)
        finally:
            consumer.close()
        expected = {0: 6, 1: 0, 2: 30}
        got = call_learner(learner_lag, group, topic, timeout=CALL_PATIENCE, what="consumer_lag")
        assert isinstance(got, dict), f"consumer_lag() returned {type(got).__name__}, expected a dict partition -> lag"
        got = {int(k): int(v) for k, v in got.items()}
        assert got == expected, (
            f"with 10/20/30 records and commits at 4 and 20 (none on partition 2), "
            f"consumer_lag gave {got}, expected {expected}"
        )
        never_committed = {
            int(k): int(v)
            for k, v in call_learner(learner_lag, idle, topic, timeout=CALL_PATIENCE, what="consumer_lag").items()
        }
        assert never_committed == {0: 10, 1: 20, 2: 30}, (
            f"a group that never committed has the whole topic as lag, got {never_committed}"
        )
    finally:
        kafka.delete_topics([topic])
    return "right per partition, also for a partition and a group that never committed"


def tally(db: Path, expected_ids: list[str]) -> dict[str, int]:
    """How the orders' effects landed in a ledger: applied once, lost, or applied more than once."""
    with sqlite3.connect(db) as conn:
        counts = Counter(row[0] for row in conn.execute("SELECT order_id FROM applied"))
    return {
        "once": sum(counts[i] == 1 for i in expected_ids),
        "lost": sum(counts[i] == 0 for i in expected_ids),
        "duplicated": sum(counts[i] > 1 for i in expected_ids),
    }


@check(
    "idempotent handler",
    hint="in apply_once, one `with conn:` transaction: INSERT OR IGNORE the order id into "
    "`seen`; only if that inserted a row (rowcount == 1), insert the effect",
)
def idempotent_handler(ledger_module: Path, ledger_db: Path, expected_ids: list[str]) -> str:
    assert ledger_module.exists(), f"{ledger_module.name} is not saved yet: run its %%app_file cell"
    # The learner's apply_once, in a process of its own, fed the same order twice.
    probe = (
        "import sqlite3, sys, tempfile, os\n"
        "from ledger import open_ledger, apply_once\n"
        "path = os.path.join(tempfile.mkdtemp(), 'probe.db')\n"
        "conn = open_ledger(path)\n"
        "order = {'order': 'o-probe', 'sku': 'kite', 'qty': 2}\n"
        "apply_once(conn, order); apply_once(conn, dict(order))\n"
        "print(conn.execute('SELECT COUNT(*) FROM applied').fetchone()[0])\n"
    )
    proc = procs.capture([sys.executable, "-c", probe], cwd=ledger_module.parent, timeout=CALL_PATIENCE)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "NotImplementedError" in last:
            raise NotImplementedError
        raise AssertionError(f"apply_once failed: {last[:200]}")
    applied = int(proc.stdout.strip().splitlines()[-1])
    assert applied == 1, f"the same order given to apply_once twice was applied {applied} times"
    assert ledger_db.exists(), f"{ledger_db.name} does not exist: run the at-least-once drill cell"
    result = tally(ledger_db, expected_ids)
    assert result["lost"] == 0 and result["duplicated"] == 0, (
        f"after the SIGKILL drill: {result['lost']} orders lost and {result['duplicated']} applied twice"
    )
    return f"{result['once']} orders applied exactly once through a crash"


@check(
    "exactly once",
    hint="in process(): begin_transaction(); produce the invoices; send_offsets_to_transaction("
    "next offsets, consumer.consumer_group_metadata()); commit_transaction()",
)
def exactly_once(orders_topic: str, invoices_topic: str) -> str:
    orders = {r.value["order"]: r.value for r in kafka.read_topic(orders_topic)}
    assert orders, f"no orders in {orders_topic}: run the drill cell"
    invoices = kafka.read_topic(invoices_topic, "read_committed")
    assert invoices, f"no invoices in {invoices_topic}"
    seen = Counter(r.value.get("order") for r in invoices)
    lost = [o for o in orders if seen[o] == 0]
    twice = [o for o, n in seen.items() if n > 1]
    assert not twice, f"{len(twice)} orders were invoiced twice (e.g. {twice[0]}): are the offsets in the transaction?"
    assert not lost, f"{len(lost)} of {len(orders)} orders have no committed invoice (e.g. {lost[0]})"
    stray = [o for o in seen if o not in orders]
    assert not stray, f"invoices for orders that do not exist: {stray[:3]}"
    return f"{len(orders)} orders, {len(invoices)} committed invoices: 0 lost, 0 twice"


@check("partition key", hint="POST to the sidecar's /v1.0/publish/kafka-pubsub/<topic>?metadata.partitionKey=<sku>")
def partition_key(topic: str, watcher: DaprApp) -> str:
    records = kafka.read_topic(topic)
    assert records, f"no stock updates in {topic} yet"
    partition_of: dict[str, set[int]] = defaultdict(set)
    for r in records:
        data = r.value.get("data") if isinstance(r.value, dict) else None
        assert isinstance(data, dict) and "sku" in data, (
            f"record {r.partition}/{r.offset} is not a CloudEvent with a sku"
        )
        assert r.key == data["sku"], (
            f"a record of {data['sku']} has Kafka key {r.key!r}: set metadata.partitionKey to the sku"
        )
        partition_of[r.key or ""].add(r.partition)
    received = sidecar.client(keep_alive=False).get(f"{watcher.app_url}/events", timeout=10).json()
    per_sku: dict[str, list[int]] = defaultdict(list)
    for event in received:
        per_sku[event["sku"]].append(event["seq"])
    assert sum(map(len, per_sku.values())) >= len(records), "the watcher has not received every update yet"
    for sku, seqs in per_sku.items():
        assert seqs == sorted(seqs), f"the watcher got {sku}'s updates out of order: {seqs[:8]}"
    return f"{len(records)} updates, {len(partition_of)} keys, per-key order kept"


@check(
    "supply chain",
    hint="plan(): ship min(stock, qty), backorder the rest; reorder when stock left + on order "
    "falls below REORDER_POINT",
)
def supply_chain_books(chain: dict[str, str]) -> str:
    books = supply_chain.audit(chain)
    assert books["demands"], "the retailer published no demand: run the supply-chain cell"
    assert books["filled"], "no demand was fulfilled or backordered: is the distributor running?"
    assert not books["problems"], "the books do not balance: " + "; ".join(books["problems"][:3])
    assert books["reorders"], "the distributor never reordered: plan() must return a reorder when stock runs low"
    assert books["shipped"], "nothing was shipped to the retailer"
    return f"{books['demanded']} units demanded, each shipped or backordered once; every reorder shipped once"


@check(
    "replication",
    hint="one broker of three may die: how many copies must a topic keep, how many must confirm a write "
    "so that a lone survivor refuses it, and whom must the producer wait for before it calls an order written?",
)
def replication(cluster: Cluster, topic_settings: dict[str, Any], producer_settings: dict[str, Any]) -> str:
    replicas = int(topic_settings.get("replicas", 1))
    min_insync = int(topic_settings.get("min_insync", 1))
    assert replicas <= len(BROKERS), f"replicas={replicas}, but the cluster has {len(BROKERS)} brokers"
    topic = fresh(unique_name("chk-ledger"))
    cluster.create_topic(topic, replicas=replicas, min_insync=min_insync)
    # What the brokers hold, not what the dict says.
    kept = len(cluster.placed(topic).replicas)
    assert kept > 1, f"the topic has {kept} replica: when its broker dies, its orders go with it"
    assert min_insync > 1, (
        f"min.insync.replicas={min_insync}: once one replica is left, writes are kept on a single copy"
    )
    assert kept - 1 >= min_insync, (
        f"with one broker down, {kept - 1} replica(s) remain, fewer than min.insync.replicas={min_insync}: writes stop"
    )
    drill = leader_loss(cluster, topic, producer_settings, count=ORDERS_IN_DRILL)
    assert len(drill.acked) == ORDERS_IN_DRILL, (
        f"only {len(drill.acked)} of {ORDERS_IN_DRILL} orders were acknowledged: every order must be written"
    )
    assert not drill.lost, (
        f"leader {drill.old_leader} was killed: {len(drill.lost)} of {len(drill.acked)} acknowledged orders are gone"
    )
    assert Counter(drill.present) == Counter(drill.acked), (
        f"{len(drill.acked)} orders acknowledged, {len(drill.present)} in the topic ({len(drill.duplicated)} twice)"
    )
    return f"{kept} replicas, min.insync.replicas={min_insync}; the leader killed, nothing lost"
