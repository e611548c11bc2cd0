"""The kind home's manifests, without a cluster: what it changes in lab 05's rendered home, and why.

The home itself runs in tests/runtime/test_kind_cluster.py (opt-in, a kind cluster built here).
"""

from __future__ import annotations

from lab_env.core.paths import REPO_ROOT
from lab_env.marketplace.homes import kube
from lab_env.marketplace.homes.spec import load
from lab_env.runtime.clusters import kind_home

SPEC = load(REPO_ROOT / "lab_env" / "marketplace" / "homes" / "marketplace.yaml")
SECRETS = {"openai-api-key": "Bearer placeholder"}


def _by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_components_point_at_the_services_in_the_homes_namespace_not_at_loopback():
    components = _by_kind(kind_home.home_manifests(SPEC, SECRETS, "t0k3n"), "Component")
    values = {m["name"]: m.get("value") for m in components["statestore"]["spec"]["metadata"]}
    assert values["redisHost"] == f"redis.{SPEC.home}.svc.cluster.local:6379"
    brokers = {m["name"]: m.get("value") for m in components["pubsub"]["spec"]["metadata"]}["brokers"]
    assert brokers == f"kafka.{SPEC.home}.svc.cluster.local:9092"
    assert "127.0.0.1" not in str(components)


def test_every_agent_carries_the_run_token_and_a_writable_tmp_and_nothing_else_changes():
    rendered = kube.manifests(SPEC, SECRETS)
    changed = kind_home.home_manifests(SPEC, SECRETS, "t0k3n")
    assert [o["kind"] for o in changed] == [o["kind"] for o in rendered]
    for name, deployment in _by_kind(changed, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert env["LAB_RUN_TOKEN"] == "t0k3n" and env["APP_ID"] == name
        assert pod["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["dapr.io/enabled"] == "true"  # the injector's cue, as rendered
    assert _by_kind(changed, "Configuration") == _by_kind(rendered, "Configuration")


def test_redis_keeps_its_images_entrypoint_and_kafka_is_reachable_before_it_is_ready():
    objects = kind_home.backing_services(SPEC.home)
    deployments = _by_kind(objects, "Deployment")
    redis = deployments["redis"]["spec"]["template"]["spec"]
    # Compose's `command` is Kubernetes' `args`: `command` would skip the entrypoint that turns protected mode off.
    assert "command" not in redis["containers"][0] and redis["containers"][0]["args"][0] == "redis-server"
    kafka = deployments["kafka"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in kafka["containers"][0]["env"]}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka.{SPEC.home}.svc.cluster.local:9092"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"  # the compose file's settings, read from it
    assert all(d["spec"]["template"]["spec"]["enableServiceLinks"] is False for d in deployments.values())
    service = _by_kind(objects, "Service")["kafka"]["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
