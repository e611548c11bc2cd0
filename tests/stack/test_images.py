"""The image bakery, for real: images built here with no pull, kept when their recipe is unchanged,
and Dapr's sidecar in its container saving state into Redis in its own, on a private network.

Marked `containers`, like test_engine.py: `make test` runs them (they start lab-env's
own dockerd, as root; LAB_ENV_CONTAINERS=0 leaves them out). The first run builds every
image (about 30 s with apt's cache warm); later runs keep them.
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
import yaml

from lab_env.core.names import unique_name
from lab_env.core.ports import free_ports
from lab_env.core.probes import wait_until
from lab_env.stack import engine
from lab_env.stack.devcontainer import COMPOSE_FILE
from lab_env.stack.images import bakery, catalog, recipes
from lab_env.stack.images import zipkin as zipkin_image
from tests import own_engine

# The containers lane (tests/run_suite.py) runs these files one after another, beside phase 1.
pytestmark = [pytest.mark.containers]
ours = own_engine.ours  # the fixture

# Safety nets against a hang, never pass/fail criteria on a busy machine.
READY_S = 120.0


@pytest.fixture(scope="module", autouse=True)
def built(ours):
    bakery.build(ours)


def test_a_second_build_keeps_every_image_and_status_shows_them_current(ours):
    again = bakery.build(ours)
    assert [b.action for b in again] == ["kept"] * len(catalog.catalog())
    rows = bakery.status(ours)
    assert all(row.built and row.current for row in rows), rows
    assert {row.name for row in rows} == set(catalog.catalog())


def test_a_changed_recipe_shows_stale(ours, monkeypatch):
    monkeypatch.setattr(recipes, "REDIS_ENTRYPOINT", recipes.REDIS_ENTRYPOINT + "# changed\n")
    rows = {row.name: row for row in bakery.status(ours)}
    assert rows["redis"].built and not rows["redis"].current
    assert rows["dapr"].current


def test_an_image_nobody_builds_fails_in_one_line_naming_the_build(ours):
    with pytest.raises(Exception, match="nothing can be pulled"):
        bakery.require(ours, "example.org/nobody/builds:this")
    assert bakery.require(ours, catalog.get("redis").upstream or "") == catalog.get("redis").ref


def test_prune_removes_the_image_a_rebuild_left_untagged_and_keeps_the_tagged_one(ours, monkeypatch):
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")  # the classic builder, as the bakery's: BuildKit's pulls its frontend
    name = unique_name("prune")
    tag, base = f"lab-env/{name}:t", catalog.get("busybox").ref

    def build(n: int) -> str:
        recipe = f"FROM {base}\nLABEL lab-env-test={name} build={n}\n"
        return ours.check("build", "-q", "-t", tag, "-", input=recipe.encode()).strip()

    first, second = build(1), build(2)
    try:
        assert first != second and ours.docker("image", "inspect", first).returncode == 0  # left untagged
        pruned = bakery.prune(ours, label=f"lab-env-test={name}")  # this test's only: a build may run beside it
        assert pruned.images >= 1
        assert ours.docker("image", "inspect", first).returncode != 0, "the untagged image is still there"
        assert ours.docker("image", "inspect", tag).returncode == 0, "prune removed a tagged image"
        assert ours.docker("image", "inspect", base).returncode == 0
    finally:
        ours.docker("rmi", "-f", tag)


def test_redis_stand_in_follows_the_upstream_entrypoint_rules(ours):
    ref = catalog.get("redis").ref
    # Bare options go to redis-server.
    assert "v=7.0" in ours.check("run", "--rm", ref, "--version")
    # Other commands run as given, as root.
    assert ours.check("run", "--rm", ref, "id", "-un") == "root\n"


def test_daprd_in_its_container_saves_state_into_redis_in_another(ours, tmp_path):
    name = unique_name("img")
    network, redis, daprd = f"{name}-net", f"{name}-redis", f"{name}-daprd"
    (port,) = free_ports(1)
    components = tmp_path / "components"
    components.mkdir()
    (components / "statestore.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n"
        "  type: state.redis\n  version: v1\n  metadata:\n"
        f"    - name: redisHost\n      value: {redis}:6379\n"
    )
    components.chmod(0o755)
    ours.check("network", "create", network)
    try:
        ours.check(
            "run", "-d", "--name", redis, "--network", network, catalog.get("redis").ref,
            "redis-server", "--appendonly", "yes", "--save", "",
        )  # fmt: skip
        wait_until(
            lambda: ours.docker("exec", redis, "redis-cli", "ping").stdout.strip() == "PONG",
            READY_S,
            "redis in its container to answer",
        )
        ours.check(
            "run", "-d", "--name", daprd, "--network", network, "-p", f"127.0.0.1:{port}:3500",
            "-v", f"{components}:/components:ro", "--entrypoint", "./daprd", catalog.get("dapr").ref,
            "--app-id", "probe", "--resources-path", "/components", "--dapr-http-port", "3500",
            "--placement-host-address", "", "--scheduler-host-address", "", "--log-level", "info",
        )  # fmt: skip
        sidecar = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{sidecar}/v1.0/healthz/outbound", timeout=2).status_code == 204
            except httpx.HTTPError:
                return False

        wait_until(healthy, READY_S, "daprd in its container to be healthy")
        saved = httpx.post(f"{sidecar}/v1.0/state/statestore", json=[{"key": "k", "value": {"n": 1}}], timeout=30)
        assert saved.status_code == 204, saved.text
        assert httpx.get(f"{sidecar}/v1.0/state/statestore/k", timeout=30).json() == {"n": 1}
        # The value is in the other container's Redis, under Dapr's app-id prefix.
        stored = ours.check("exec", redis, "redis-cli", "hget", "probe||k", "data")
        assert json.loads(stored) == {"n": 1}
        # As upstream: daprd runs as distroless's nonroot user, redis-server as redis.
        assert _users(ours, daprd) == {"daprd": str(recipes.NONROOT)}
        # (uids: `docker top` names users as the host's /etc/passwd does)
        assert _users(ours, redis) == {"redis-server": ours.check("exec", redis, "id", "-u", "redis").strip()}
    finally:
        for container in (daprd, redis):
            ours.docker("rm", "-f", container)
        ours.docker("network", "rm", network)


def _users(ours: engine.Engine, container: str) -> dict[str, str]:
    """Each process of ``container``: its command name and the uid it runs as."""
    lines = ours.check("top", container, "-o", "pid,uid,comm").splitlines()[1:]
    return {line.split()[2]: line.split()[1] for line in lines}


def test_kafka_stand_in_runs_the_compose_settings_and_keeps_a_topic_across_a_restart(ours):
    """The kafka service of devcontainer/compose.yaml, with its environment as written there:
    Kafka's own Docker wrapper turns it into server.properties and formats the volume once."""
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["kafka"]
    name = unique_name("img")
    network, kafka, volume = f"{name}-net", f"{name}-kafka", f"{name}-data"
    env = [arg for key, value in service["environment"].items() for arg in ("-e", f"{key}={value}")]
    ours.check("network", "create", network)
    ours.check("volume", "create", volume)
    healthcheck = service["healthcheck"]["test"][1]  # CMD-SHELL's command, as compose runs it

    def start() -> None:
        ours.check(
            "run", "-d", "--name", kafka, "--network", network, "--network-alias", "kafka",
            "-v", f"{volume}:/var/lib/kafka/data", *env, catalog.get("kafka").ref,
        )  # fmt: skip
        wait_until(
            lambda: ours.docker("exec", kafka, "bash", "-c", healthcheck, timeout=120).returncode == 0,
            READY_S,
            "the kafka container's health check to pass",
            failure=lambda: ours.docker("logs", "--tail", "5", kafka).stdout,
        )

    def tool(*argv: str) -> str:
        return ours.check("exec", kafka, *argv, timeout=120)

    try:
        start()
        tool(
            "kafka-topics.sh", "--bootstrap-server", "kafka:9092", "--create", "--topic", "orders", "--partitions", "3"
        )
        done = ours.docker(
            "exec", "-i", kafka, "kafka-console-producer.sh", "--bootstrap-server", "kafka:9092", "--topic", "orders",
            input=b"order-1\n", timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        read = tool(
            "kafka-console-consumer.sh", "--bootstrap-server", "kafka:9092", "--topic", "orders",
            "--from-beginning", "--max-messages", "1", "--timeout-ms", "60000",
        )  # fmt: skip
        assert read.strip() == "order-1"
        # The wrapper's server.properties has the compose file's settings.
        props = tool("cat", "/opt/kafka/config/server.properties")
        assert "advertised.listeners=PLAINTEXT://kafka:9092" in props and "num.partitions=3" in props
        ours.check("rm", "-f", kafka)
        start()  # the formatted volume is kept, not formatted again
        assert "PartitionCount: 3" in tool(
            "kafka-topics.sh", "--bootstrap-server", "kafka:9092", "--describe", "--topic", "orders"
        )
        assert _users(ours, kafka).get("java") == str(recipes.KAFKA_APPUSER)
    finally:
        ours.docker("rm", "-f", kafka)
        ours.docker("volume", "rm", volume)
        ours.docker("network", "rm", network)


def test_zipkin_stand_in_passes_the_compose_health_check_and_gives_back_a_span(ours):
    """The zipkin service of devcontainer/compose.yaml, with its environment and health check as written there."""
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["zipkin"]
    name = unique_name("img")
    (port,) = free_ports(1)
    env = [arg for key, value in service["environment"].items() for arg in ("-e", f"{key}={value}")]
    healthcheck = service["healthcheck"]["test"][1:]  # CMD's argv, as compose runs it
    try:
        ours.check("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9411", *env, catalog.get("zipkin").ref)
        wait_until(
            lambda: ours.docker("exec", name, *healthcheck, timeout=60).returncode == 0,
            READY_S,
            "the zipkin container's health check to pass",
            failure=lambda: ours.docker("logs", "--tail", "5", name).stdout,
        )
        zipkin = f"http://127.0.0.1:{port}/api/v2"
        trace = secrets.token_hex(8)
        span = {"traceId": trace, "id": trace, "name": "reserve", "timestamp": 1_700_000_000_000_000,
                "duration": 1500, "localEndpoint": {"serviceName": "products"}}  # fmt: skip
        sent = httpx.post(f"{zipkin}/spans", json=[span], timeout=30)
        assert sent.status_code == 202, sent.text
        # Zipkin stores spans asynchronously: the trace answers 404 until the span is in.
        wait_until(
            lambda: httpx.get(f"{zipkin}/trace/{trace}", timeout=5).status_code == 200,
            READY_S,
            "zipkin to give the span back",
        )
        got = httpx.get(f"{zipkin}/trace/{trace}", timeout=5).json()
        assert got[0]["name"] == "reserve" and got[0]["localEndpoint"]["serviceName"] == "products"
        assert _users(ours, name).get("java") == str(zipkin_image.USER_ID)
    finally:
        ours.docker("rm", "-f", name)
