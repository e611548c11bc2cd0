"""What each service of the native stack is: command, ports, readiness probe.

All listen on 127.0.0.1 only. Health and metrics ports sit in the 58xxx and
59xxx ranges, away from the ephemeral ports sidecars are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.core import probes
from lab_env.core.paths import dapr_bin, logs_dir, state_dir
from lab_env.core.profile import NATIVE, Profile
from lab_env.stack.provision.kafka import java_command as java
from lab_env.stack.provision.kafka import new_cluster_id
from lab_env.stack.provision.redis import redis_server

# Our Dapr build's healthz servers listen on this address (lab_env/stack/provision/dapr.py).
HEALTHZ_HOST_VAR = "DAPR_HEALTHZ_LISTEN_ADDRESS"


@dataclass
class Service:
    name: str
    ports: dict[str, int]
    argv: Callable[[], list[str]]
    probe: probes.Probe
    prepare: Callable[[], None] = lambda: None
    env: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @property
    def log_path(self) -> Path:
        return logs_dir() / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return state_dir() / "data" / self.name


def services(profile: Profile = NATIVE) -> list[Service]:
    host = "127.0.0.1"
    return [_redis(profile, host), _kafka(profile, host), _placement(profile, host), _scheduler(profile, host)]


def _redis(p: Profile, host: str) -> Service:
    svc = Service(
        name="redis",
        ports={"redis": p.redis_port},
        argv=lambda: [],
        probe=probes.redis_ping(p.redis_host, p.redis_port),
        summary="state store, actor state, pub/sub broker",
    )
    svc.argv = lambda: [
        redis_server() or "redis-server",
        "--bind",
        host,
        "--port",
        str(p.redis_port),
        "--protected-mode",
        "yes",
        "--dir",
        str(svc.data_dir),
        # Append-only file: actor state and reminders survive `lab-env down`.
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    svc.prepare = lambda: svc.data_dir.mkdir(parents=True, exist_ok=True)
    return svc


def _kafka(p: Profile, host: str) -> Service:
    svc = Service(
        name="kafka",
        ports={"broker": p.kafka_port, "controller": p.kafka_controller_port},
        argv=lambda: [],
        probe=probes.kafka_metadata(p.kafka_bootstrap),
        summary="Apache Kafka broker+controller (KRaft)",
    )

    def props() -> Path:
        return svc.data_dir / "server.properties"

    def prepare() -> None:
        logs = svc.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        props().write_text(_kafka_properties(p, host, logs))
        if not (logs / "meta.properties").exists():
            import subprocess

            cluster_id = new_cluster_id()
            subprocess.run(
                java("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(props())),
                check=True,
                capture_output=True,
            )

    svc.argv = lambda: java("kafka.Kafka", str(props()))
    svc.prepare = prepare
    return svc


def _kafka_properties(p: Profile, host: str, logs: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{p.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{host}:{p.kafka_port},CONTROLLER://{host}:{p.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{p.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(logs),
        "num.partitions": "3",
        # One broker: every internal topic has a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        # A consumer group starts consuming at once instead of after 3 s.
        "group.initial.rebalance.delay.ms": "0",
        # The KIP-848 consumer protocol keeps member timing on the broker. Its
        # defaults (5 s heartbeats, 45 s session) make a lab wait; these keep
        # a rebalance to about a second and a dead member to 10 s.
        "group.consumer.min.heartbeat.interval.ms": "500",
        "group.consumer.heartbeat.interval.ms": "1000",
        "group.consumer.min.session.timeout.ms": "6000",
        "group.consumer.session.timeout.ms": "10000",
        "auto.create.topics.enable": "true",
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def _control_plane_flags(host: str, ports: dict[str, int], server_id: str) -> list[str]:
    """The flags placement and scheduler share: every listener on ``host``, their ports, their id."""
    return [
        *("--listen-address", host, "--port", str(ports["grpc"])),
        *("--healthz-listen-address", host, "--healthz-port", str(ports["healthz"])),
        *("--metrics-listen-address", host, "--metrics-port", str(ports["metrics"])),
        *("--id", server_id, "--log-level", "info"),
    ]


def _placement(p: Profile, host: str) -> Service:
    ports = {"grpc": p.placement_port, "healthz": p.placement_healthz_port, "metrics": 59090, "raft": 58201}
    return Service(
        name="placement",
        ports=ports,
        argv=lambda: [
            str(dapr_bin("placement")),
            *_control_plane_flags(host, ports, "dapr-placement-0"),
            *("--initial-cluster", f"dapr-placement-0={host}:{ports['raft']}"),
            # Serve the placement table on the health port (lab 01 shows it).
            "--metadata-enabled",
        ],
        probe=probes.http_ok(f"http://{p.placement_host}:{ports['healthz']}/healthz"),
        env={HEALTHZ_HOST_VAR: host},
        summary="Dapr actor placement (which host runs which actor)",
    )


def _scheduler(p: Profile, host: str) -> Service:
    ports = {"grpc": p.scheduler_port, "healthz": 58081, "metrics": 59091, "etcd-client": 52379, "etcd-peer": 52380}
    svc = Service(
        name="scheduler",
        ports=ports,
        argv=lambda: [],
        probe=probes.http_ok(f"http://{p.scheduler_host}:{ports['healthz']}/healthz"),
        env={HEALTHZ_HOST_VAR: host},
        summary="Dapr scheduler (reminders, jobs, workflow timers), embedded etcd",
    )
    svc.argv = lambda: [
        str(dapr_bin("scheduler")),
        *_control_plane_flags(host, ports, "dapr-scheduler-server-0"),
        *("--override-broadcast-host-port", f"{host}:{ports['grpc']}"),
        *("--etcd-data-dir", str(svc.data_dir)),
        *("--etcd-client-listen-address", host, "--etcd-client-port", str(ports["etcd-client"])),
        *("--etcd-initial-cluster", f"dapr-scheduler-server-0=http://{host}:{ports['etcd-peer']}"),
    ]
    svc.prepare = lambda: svc.data_dir.mkdir(parents=True, exist_ok=True)
    return svc
