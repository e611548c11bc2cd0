"""A Kafka cluster of its own, with three brokers, for lab 03's replication section.

The stack's broker is a single node, so every topic on it has one replica and
``acks=all`` waits for nobody. Here one KRaft controller and three brokers run
as workers (``lab_env.runtime.workers``: logs, ``lab-env down``, a real SIGKILL)
on free loopback ports, each with a log directory of its own that survives a
restart. A broker can be killed, paused (SIGSTOP: it keeps its sockets and does
nothing, like a machine in a long stall) and resumed, or restarted; a topic's
leader, replicas and in-sync replicas (ISR) come from the cluster's metadata.

    cluster = start_cluster(unique_name("trio"))
    cluster.create_topic("ledger", replicas=3, min_insync=2)
    cluster.partition("ledger")        # Partition(leader=2, replicas=[2, 3, 1], isr=[2, 3, 1])
    cluster.kill(2); cluster.restart(2)
    cluster.stop()

Failures show sooner than with production's settings: a broker that misses
heartbeats for 6 s is fenced (``broker.session.timeout.ms``, 9 s by default)
and a follower 10 s behind leaves the ISR (``replica.lag.time.max.ms``, 30 s
by default). Each JVM gets a 256 MiB heap.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_env.core import procs, registry
from lab_env.core.ports import free_ports
from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.runtime.apps import apps_dir
from lab_env.runtime.workers import Worker, start_worker, stop_worker
from lab_env.stack.provision.kafka import java_command, new_cluster_id

CONTROLLER = 0
BROKERS = (1, 2, 3)
HOST = "127.0.0.1"
STARTED = r"Kafka Server started"
HEAP_MB = 256
SESSION_TIMEOUT_MS = 6000
LAG_MAX_MS = 10000


@dataclass(frozen=True)
class Partition:
    """Where a partition lives: its leader (-1 when it has none), its replicas and the in-sync ones."""

    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class Cluster:
    name: str
    folder: Path
    ports: dict[int, int]  # node id -> its listener's port (the controller's too)
    nodes: dict[int, Worker]
    _admin: Any = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{self.ports[b]}" for b in BROKERS)

    def config(self, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Client settings on this cluster. librdkafka logs only critical lines: brokers here are
        killed on purpose, and its "Connect ... failed" errors about them would fill the outputs."""
        return {"bootstrap.servers": self.bootstrap, "log_level": 2, **(settings or {})}

    def admin(self):  # -> AdminClient, one per cluster: each new client costs threads and connections
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient(self.config())
        return self._admin

    def create_topic(self, topic: str, replicas: int = 3, min_insync: int = 2, partitions: int = 1) -> None:
        from confluent_kafka.admin import NewTopic

        new = NewTopic(topic, partitions, replicas, config={"min.insync.replicas": str(min_insync)})
        self.admin().create_topics([new])[topic].result(30)
        self.placed(topic)

    def partition(self, topic: str, index: int = 0, timeout: float = 60) -> Partition:
        """The partition as the cluster's metadata has it now. Each metadata request goes to
        whichever broker the client picks, and just after a topic is created one that has not
        applied it yet answers with no replicas: such an answer is asked again."""
        return self.wait_for(topic, index, lambda p: bool(p.replicas), timeout, f"{topic} in the cluster's metadata")

    def placed(self, topic: str, index: int = 0) -> Partition:
        """The partition once it has a leader (a new topic's leader is elected a moment after it is known)."""
        return self.wait_for(topic, index, lambda p: p.leader in BROKERS, 60, f"a leader for {topic}")

    def wait_for(self, topic: str, index: int, ok: Callable[[Partition], bool], timeout: float, what: str) -> Partition:
        """The first answer that satisfies ``ok``. The caller gets that answer, never a second read:
        brokers apply the controller's changes at slightly different moments, so a second read
        may come from a broker a step behind."""
        seen: list[Partition] = []

        def answer() -> bool:
            seen[:] = [self._metadata(topic, index)]
            return ok(seen[0])

        wait_until(_answered(answer), timeout, what)
        return seen[0]

    def _metadata(self, topic: str, index: int) -> Partition:
        meta = self.admin().list_topics(topic, timeout=10).topics.get(topic)
        p = meta.partitions.get(index) if meta is not None else None
        if p is None:  # not known to the broker answering (yet)
            return Partition(-1, [], [])
        return Partition(p.leader, list(p.replicas), list(p.isrs))

    def live_brokers(self) -> list[int]:
        """The brokers the metadata lists: a fenced broker is left out."""
        return sorted(self.admin().list_topics(timeout=10).brokers)

    def kill(self, node: int) -> None:
        """SIGKILL the node: no shutdown, no handing over of leadership."""
        self.nodes[node].kill()

    def pause(self, node: int) -> None:
        """SIGSTOP the node: it keeps its sockets and does nothing (see procs.pause)."""
        procs.pause(self._pid(node))

    def resume(self, node: int) -> None:
        procs.resume(self._pid(node))

    def _pid(self, node: int) -> int:
        worker = self.nodes[node]
        if not worker.alive():  # never signal pid 0: that would be the caller's own process group
            raise LabEnvError(f"broker {node} is not running", "restart it: cluster.restart(node)")
        return worker.pid

    def restart(self, *nodes: int) -> None:
        """Start killed nodes again on their own data, side by side; wait until the metadata lists them."""
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda node: self.nodes[node].restart(timeout=180), nodes))
        back = _answered(lambda: set(nodes) <= set(self.live_brokers()))
        wait_until(back, 120, f"broker(s) {', '.join(map(str, nodes))} back in the cluster")

    def wait_isr(self, topic: str, size: int, timeout: float = 120) -> Partition:
        return self.wait_for(topic, 0, lambda p: len(p.isr) == size, timeout, f"{size} in-sync replicas of {topic}")

    def read(self, topic: str) -> list[str]:
        """Every record value of partition 0, from the beginning to its end (no group, no commit)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            self.config({"group.id": f"{self.name}-reader", "enable.auto.commit": False, "fetch.wait.max.ms": 20})
        )
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            values: list[str] = []
            offset = low
            deadline = time.monotonic() + 120  # a safety net: the records are local, read in well under a second
            while offset < high:
                if time.monotonic() > deadline:
                    raise LabEnvError(f"reading {topic} stopped at offset {offset} of {high}", "run the cell again")
                for msg in consumer.consume(500, 1.0):
                    if msg.error() is None:
                        values.append((msg.value() or b"").decode())
                        offset = (msg.offset() or 0) + 1
            return values
        finally:
            consumer.close()

    def stop(self) -> None:
        """Kill every node and delete the cluster's data. (A clean broker shutdown hands its
        leaderships over first, which takes seconds per broker, for a cluster about to be deleted.)"""
        for worker in self.nodes.values():
            worker.kill()
            stop_worker(worker)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(name: str, timeout: float = 300) -> Cluster:
    """One controller and three brokers, formatted afresh under the apps folder; returns
    once the metadata lists all three brokers. Re-running it replaces a cluster of the same name."""
    folder = apps_dir() / name
    for node in (CONTROLLER, *BROKERS):  # a cluster of this name still running (a cell run twice) is replaced
        registry.stop(f"{name}-node-{node}", timeout=10)
    shutil.rmtree(folder, ignore_errors=True)
    ports = dict(zip((CONTROLLER, *BROKERS), free_ports(1 + len(BROKERS)), strict=True))
    cluster_id = new_cluster_id()
    nodes: dict[int, Worker] = {}
    cluster = Cluster(name, folder, ports, nodes)
    try:
        for node in (CONTROLLER, *BROKERS):
            data = folder / f"node-{node}"
            logs = data / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            properties = data / "server.properties"
            properties.write_text(_properties(node, ports, logs))
            code = procs.run(
                java_command("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)),
                data / "format.log",
                stdin=b"",
                timeout=timeout,
            )
            if code != 0:
                raise LabEnvError(
                    f"formatting Kafka node {node} failed: {procs.tail(data / 'format.log', 3)}",
                    "run `lab-env doctor`: the Kafka jars and Java must be in place",
                )
        for node in (CONTROLLER, *BROKERS):  # all four JVMs start side by side
            properties = folder / f"node-{node}" / "server.properties"
            argv = java_command("kafka.Kafka", str(properties), heap_mb=HEAP_MB)
            nodes[node] = start_worker(f"{name}-node-{node}", argv, cwd=folder, ports=[ports[node]])
        for worker in nodes.values():
            worker.ready = STARTED  # a restart waits for this line again
        wait_until(
            lambda: all(len(w.log_lines(STARTED)) >= w.starts for w in nodes.values()),
            timeout,
            "the controller and three brokers to start",
            watch=list(nodes.values()),
        )
        wait_until(_answered(lambda: cluster.live_brokers() == list(BROKERS)), timeout, "three brokers in the metadata")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def load_cluster(name: str, all_running: bool = True) -> Cluster:
    """The handle of a running cluster, from its nodes' records and its folder (started by any process).
    ``all_running=False``: also while a node is killed or stopped (to restart or resume it)."""
    folder = apps_dir() / name
    ports: dict[int, int] = {}
    nodes: dict[int, Worker] = {}
    for node in (CONTROLLER, *BROKERS):
        record = registry.load(f"{name}-node-{node}")
        properties = folder / f"node-{node}" / "server.properties"
        if record is None or (all_running and not registry.live_pids(record)) or not properties.exists():
            raise LabEnvError(f"no Kafka cluster {name!r} is running", "start it with start_cluster first")
        listener = next(line for line in properties.read_text().splitlines() if line.startswith("listeners="))
        ports[node] = int(listener.rsplit(":", 1)[1])
        pid = record.pids[0] if record.pids else 0  # 0: killed (Worker.kill keeps the record)
        env = {"LAB_RUN_TOKEN": record.token} if record.token else {}
        argv = list(record.extra["argv"])
        nodes[node] = Worker(
            record.name, argv, apps_dir() / record.name, folder, env, STARTED, pid, 1, ports=(ports[node],)
        )
        nodes[node].started = record.start_times.get(pid)
    return Cluster(name, folder, ports, nodes)


def _answered(predicate: Callable[[], bool]) -> Callable[[], bool]:
    """``predicate``, false while the cluster does not answer (a broker starting or just killed)."""
    from confluent_kafka import KafkaException

    def probe() -> bool:
        try:
            return predicate()
        except KafkaException:
            return False

    return probe


def _properties(node: int, ports: dict[int, int], logs: Path) -> str:
    common = {
        "node.id": str(node),
        "controller.quorum.voters": f"{CONTROLLER}@{HOST}:{ports[CONTROLLER]}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(logs),
    }
    if node == CONTROLLER:
        # One controller, apart from the brokers: a broker's death never costs the cluster its quorum.
        role = {
            "process.roles": "controller",
            "listeners": f"CONTROLLER://{HOST}:{ports[node]}",
            "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
        }
    else:
        role = {
            "process.roles": "broker",
            "listeners": f"PLAINTEXT://{HOST}:{ports[node]}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{ports[node]}",
            "inter.broker.listener.name": "PLAINTEXT",
            "broker.heartbeat.interval.ms": "500",
            "replica.lag.time.max.ms": str(LAG_MAX_MS),
            "replica.fetch.wait.max.ms": str(FETCH_WAIT_MS),
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2",
            "group.initial.rebalance.delay.ms": "0",
        }
    return "".join(f"{k}={v}\n" for k, v in {**common, **role}.items())


@dataclass(frozen=True)
class LeaderLoss:
    """What a leader-loss drill saw: the values the producer was told were written, the
    values the topic holds once the old leader is back, and who led before and after."""

    acked: list[str]
    present: list[str]
    old_leader: int
    new_leader: int

    @property
    def lost(self) -> list[str]:
        """Acknowledged, and gone."""
        kept = set(self.present)
        return [v for v in self.acked if v not in kept]

    @property
    def duplicated(self) -> list[str]:
        return sorted(v for v, n in Counter(self.present).items() if n > 1)


# How long a follower's pending fetch may wait at the leader (replica.fetch.wait.max.ms, set in
# _properties). Three times that, and a paused follower has no request left there to answer.
FETCH_WAIT_MS = 500
FETCH_WAIT_S = 3 * FETCH_WAIT_MS / 1000


def leader_loss(cluster: Cluster, topic: str, producer: Mapping[str, Any], count: int = 100) -> LeaderLoss:
    """The drill that tells ``acks=1`` from ``acks=all``: pause the followers, write
    ``count`` records with ``producer``'s settings, SIGKILL the leader, let the
    followers go on (one of them is elected: both were still in sync), restart
    the old leader (it truncates its log to the new leader's) and read the topic.

    With ``acks=1`` the leader acknowledged records no follower had: they are lost.
    With ``acks=all`` nothing was acknowledged before the kill; the producer
    retries to the new leader, and every acknowledged record is there.
    The followers are paused for about a second, far less than the 6 s after which
    the controller would fence them, so both stay eligible.
    """
    from confluent_kafka import Producer

    before = cluster.placed(topic)
    old = before.leader
    followers = [n for n in before.isr if n != old and cluster.nodes[n].alive()]
    # The cluster and the drill's patience are the drill's: a producer's settings cannot move them.
    fixed = {"bootstrap.servers": cluster.bootstrap, "message.timeout.ms": 120_000, "linger.ms": 0}
    writer = Producer(cluster.config({**producer, **fixed}))
    acked: list[str] = []

    def delivered(err, msg) -> None:
        if err is None:
            acked.append(msg.value().decode())

    writer.produce(topic, b"warm-up", on_delivery=delivered)  # connections and metadata first
    writer.flush(60)
    paused: list[int] = []
    try:
        for node in followers:
            cluster.pause(node)
            paused.append(node)
        time.sleep(FETCH_WAIT_S)  # a protocol timer, not readiness: see FETCH_WAIT_S
        for n in range(count):
            writer.produce(topic, f"order-{n:04d}".encode(), on_delivery=delivered)
        writer.flush(1.0)  # acks=1 answers at once; acks=all waits for the paused followers
        cluster.kill(old)
    finally:
        for node in paused:
            cluster.resume(node)
    try:
        writer.flush(180)  # acks=all: the retries reach the new leader
        new = cluster.wait_for(topic, 0, lambda p: p.leader in followers, 120, f"a new leader for {topic}").leader
    finally:  # the old leader comes back whatever happened: the next drill needs three brokers
        if not cluster.nodes[old].alive():
            cluster.restart(old)
    cluster.wait_isr(topic, len(before.isr))
    present = [v for v in cluster.read(topic) if v != "warm-up"]
    return LeaderLoss([v for v in acked if v != "warm-up"], present, old, new)
