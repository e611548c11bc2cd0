"""The lab stack end to end: real daprd sidecars, Redis, Kafka, placement, scheduler."""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from counter_interface import CounterInterface
from dapr.actor import ActorId, ActorProxy
from dapr.clients import DaprClient

from lab_env import dapr_app, unique_name, uvicorn_command
from lab_env.core.probes import wait_until
from lab_env.core.profile import current

pytestmark = pytest.mark.stack


def test_state_save_and_get_through_a_sidecar():
    with dapr_app(unique_name("state-test"), components=["statestore"]) as app:
        app.use_sdk()
        with DaprClient() as client:
            key = f"order-{secrets.token_hex(4)}"
            client.save_state("statestore", key, json.dumps({"qty": 3}))
            assert json.loads(client.get_state("statestore", key).data) == {"qty": 3}


@pytest.fixture
def counter_app(apps_dir):
    actor_type = unique_name("Counter").replace("-", "")
    with dapr_app(
        unique_name("actors"),
        uvicorn_command("counter_actor:app"),
        cwd=apps_dir,
        components=["statestore"],
        env={"ACTOR_TYPE": actor_type},
    ) as app:
        app.use_sdk()
        yield app, actor_type


def test_actor_hosted_by_fastapi_is_called_with_actor_proxy(counter_app):
    app, actor_type = counter_app

    async def scenario() -> tuple[int, int]:
        proxy = ActorProxy.create(actor_type, ActorId("p-1"), CounterInterface)
        await proxy.Increment(2)
        after = await proxy.Increment(3)
        other = await ActorProxy.create(actor_type, ActorId("p-2"), CounterInterface).Get()
        return after, other

    after, other = asyncio.run(scenario())
    assert after == 5  # state persisted across calls
    assert other == 0  # each actor id has its own state


def test_actor_reminder_fires(counter_app):
    app, actor_type = counter_app
    proxy = ActorProxy.create(actor_type, ActorId("r-1"), CounterInterface)
    asyncio.run(proxy.StartReminder(1))
    wait_until(lambda: asyncio.run(proxy.ReminderFires()) >= 2, timeout=120, what="reminder fired twice")


@pytest.mark.parametrize("pubsub", ["pubsub", "kafka-pubsub"])
def test_pubsub_round_trip(apps_dir, pubsub):
    topic = unique_name(f"orders-{pubsub}")
    env = {"PUBSUB": pubsub, "TOPIC": topic}
    with (
        dapr_app(
            unique_name(f"sub-{pubsub}"), uvicorn_command("subscriber:app"), cwd=apps_dir, components=[pubsub], env=env
        ) as sub,
        dapr_app(unique_name(f"pub-{pubsub}"), components=[pubsub]) as pub,
    ):
        sent = [{"order": i} for i in range(3)]
        for event in sent:
            r = httpx.post(f"{pub.sidecar_url}/v1.0/publish/{pubsub}/{topic}", json=event, timeout=10)
            assert r.status_code == 204, r.text

        def received() -> list:
            return httpx.get(f"{sub.app_url}/received", timeout=5).json()

        wait_until(lambda: len(received()) >= 3, timeout=60, what=f"3 events over {pubsub}")
        assert sorted(received(), key=lambda e: e["order"]) == sent


def test_confluent_kafka_produce_and_consume_on_an_admin_created_topic():
    bootstrap = current().kafka_bootstrap
    topic = unique_name("kafka-raw") + "-" + secrets.token_hex(3)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 2

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, key=f"k{i % 3}", value=f"v{i}")
    assert producer.flush(15) == 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[str] = []
    try:
        wait_until(lambda: _poll_into(consumer, got) >= 10, timeout=60, what="10 Kafka records")
    finally:
        consumer.close()
    assert sorted(got) == sorted(f"v{i}" for i in range(10))


def _poll_into(consumer: Consumer, sink: list[str]) -> int:
    msg = consumer.poll(0.5)
    if msg is not None and msg.error() is None:
        sink.append(msg.value().decode())
    return len(sink)


def test_two_activity_workflow_completes(apps_dir):
    with dapr_app(
        unique_name("workflow"), uvicorn_command("two_step_workflow:app"), cwd=apps_dir, components=["statestore"]
    ) as app:
        instance = unique_name("wf") + secrets.token_hex(3)
        assert httpx.post(f"{app.app_url}/start/{instance}", params={"n": 20}, timeout=30).status_code == 200

        def result() -> dict:
            return httpx.get(f"{app.app_url}/result/{instance}", timeout=10).json()

        wait_until(
            lambda: result()["status"] in ("COMPLETED", "FAILED", "TERMINATED"), timeout=60, what="workflow finished"
        )
        assert result() == {"status": "COMPLETED", "output": "41"}


def test_starting_an_app_id_again_replaces_the_one_this_process_started():
    from lab_env import start_app, stop_app
    from lab_env.core.procs import alive

    app_id = unique_name("rerun")
    first = start_app(app_id, components=["statestore"])
    first_pid = first.sidecar_pid
    second = start_app(app_id, components=["statestore"])  # a notebook's start cell, run again
    try:
        assert not alive(first_pid)
        assert httpx.get(f"{second.sidecar_url}/v1.0/healthz", timeout=5).status_code == 204
    finally:
        stop_app(second)


def test_a_port_taken_after_it_was_chosen_costs_a_retry_not_the_app(monkeypatch):
    # Another program binds a chosen port just before the sidecar does: the sidecar exits with
    # "address already in use", both processes are stopped, and the app starts on fresh ports.
    import socket

    from lab_env import start_app, stop_app
    from lab_env.runtime import apps

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    calls: list[list[int]] = []

    def first_choice_taken(count: int) -> list[int]:
        fresh = real(count)
        calls.append(fresh if calls else [*fresh[:2], taken.getsockname()[1], *fresh[3:]])  # the gRPC port
        return calls[-1]

    real = apps.free_ports
    monkeypatch.setattr(apps, "free_ports", first_choice_taken)
    try:
        app = start_app(unique_name("taken"), components=["statestore"])
        try:
            assert len(calls) == 2, "the refused sidecar was started again on fresh ports"
            assert app.grpc_port != taken.getsockname()[1]
            assert httpx.get(f"{app.sidecar_url}/v1.0/healthz", timeout=30).status_code == 204
        finally:
            stop_app(app)
    finally:
        taken.close()


def test_every_stack_service_and_sidecar_listens_on_loopback_only():
    """Dapr 1.18.2's healthz servers ignore --healthz-listen-address; our build
    patches them (lab_env/stack/provision/dapr.py). This fails on a stock build."""
    import psutil

    from lab_env.stack.lifecycle import status

    with dapr_app(unique_name("loopback"), components=[]) as app:
        pids = {s.name: s.pid for s in status() if s.pid}
        pids["daprd"] = app.sidecar_pid
        assert {"redis", "kafka", "placement", "scheduler"} <= set(pids)
        for name, pid in pids.items():
            processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            listening = [
                c.laddr for p in processes for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
            ]
            assert listening, f"{name} listens nowhere"
            wide = [f"{a.ip}:{a.port}" for a in listening if a.ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
            assert not wide, f"{name} listens beyond loopback on {wide}"
