"""components/: valid, and rendered per profile with the right hosts."""

from __future__ import annotations

from pathlib import Path

import yaml

from lab_env.stack.components import render_components, validate_all


def _metadata(path: Path) -> dict[str, str]:
    doc = yaml.safe_load(path.read_text())
    return {m["name"]: m.get("value", m.get("envRef")) for m in doc["spec"]["metadata"]}


def test_components_are_valid_and_cover_the_labs():
    docs = validate_all()
    types = {d["metadata"]["name"]: d["spec"].get("type") for d in docs if d["kind"] == "Component"}
    assert types == {
        "statestore": "state.redis",
        "pubsub": "pubsub.redis",
        "kafka-pubsub": "pubsub.kafka",
        "secretstore": "secretstores.local.env",
    }
    assert _metadata(Path("components/statestore.yaml"))["actorStateStore"] == "true"


def test_resolved_copies_carry_each_profiles_hosts(tmp_path: Path):
    native = render_components(tmp_path / "n", profile="native", resolve_env=True)
    container = render_components(tmp_path / "c", profile="container", resolve_env=True)
    assert _metadata(native / "statestore.yaml")["redisHost"] == "127.0.0.1:6379"
    assert _metadata(container / "statestore.yaml")["redisHost"] == "redis:6379"
    assert _metadata(container / "pubsub-kafka.yaml")["brokers"] == "kafka:9092"


def test_only_keeps_named_components_and_other_resources(tmp_path: Path):
    out = render_components(tmp_path, only=["statestore"])
    assert sorted(p.name for p in out.iterdir()) == ["resiliency.yaml", "statestore.yaml"]
