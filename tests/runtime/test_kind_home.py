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


def test_the_home_is_the_rendered_one_with_only_the_documented_changes():
    """Each rendered object, changed by hand the documented ways only, equals what kind_home applies:
    the services' addresses, and per agent the run token, APP_ID and a writable /tmp."""
    import copy

    expected = copy.deepcopy(kube.manifests(SPEC, SECRETS))
    for obj in expected:
        if obj["kind"] == "Component":
            for item in obj["spec"]["metadata"]:
                if item.get("value") == "127.0.0.1:6379":
                    item["value"] = f"redis.{SPEC.home}.svc.cluster.local:6379"
                if item.get("value") == "127.0.0.1:9092":
                    item["value"] = f"kafka.{SPEC.home}.svc.cluster.local:9092"
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            pod["containers"][0]["env"] += [
                {"name": "LAB_RUN_TOKEN", "value": "t0k3n"},
                {"name": "APP_ID", "value": obj["metadata"]["name"]},
            ]
            pod["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
            pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    assert kind_home.home_manifests(SPEC, SECRETS, "t0k3n") == expected
    deployments = _by_kind(expected, "Deployment")
    assert deployments and all(
        d["spec"]["template"]["metadata"]["annotations"]["dapr.io/enabled"] == "true" for d in deployments.values()
    )  # the injector's cue, as rendered


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


def test_render_for_a_cluster_of_your_own_has_one_namespace_your_image_and_no_secret():
    import yaml

    objects = list(yaml.safe_load_all(kind_home.render(SPEC, image="registry.example/agents:1", token="t0k3n")))
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace" and kinds.count("Namespace") == 1 and "Secret" not in kinds
    images = {o["spec"]["template"]["spec"]["containers"][0]["image"] for o in objects if o["kind"] == "Deployment"}
    assert "registry.example/agents:1" in images and SPEC.image not in images
    assert {"redis", "kafka"} <= {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
