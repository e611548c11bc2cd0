"""The container home, checked statically (test_container_home_live.py runs it under real compose)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lab_env.core.paths import REPO_ROOT
from lab_env.core.versions import pins
from lab_env.marketplace.homes import container, native
from lab_env.marketplace.homes.spec import load
from lab_env.stack.images import catalog


@pytest.fixture(autouse=True)
def upstream_images(monkeypatch):
    """The default image set, whatever the shell exported (README: LAB_ENV_IMAGES=local)."""
    monkeypatch.delenv(catalog.IMAGE_SET_VAR, raising=False)


SPEC = load(os.path.join(os.path.dirname(container.__file__), "marketplace.yaml"))


def test_every_agent_runs_next_to_its_own_sidecar_in_one_network_namespace():
    project = yaml.safe_load(yaml.safe_dump(container.compose(SPEC)))  # what compose would parse
    services = project["services"]
    assert set(services) == {f"{a.app_id}{part}" for a in SPEC.agents for part in ("", "-dapr", "-pod")}
    for agent in SPEC.agents:
        app, sidecar, pod = (services[f"{agent.app_id}{part}"] for part in ("", "-dapr", "-pod"))
        # Both join the pod's namespace: a restarted agent finds its sidecar still beside it.
        assert app["network_mode"] == sidecar["network_mode"] == f"service:{agent.app_id}-pod"
        assert pod["networks"] == ["lab"] and "networks" not in app
        assert app["restart"] == sidecar["restart"] == pod["restart"] == "unless-stopped"
        assert sidecar["image"] == pins().image("dapr") and sidecar["image"].endswith(pins().dapr_runtime)
        command = sidecar["command"]
        assert command[command.index("--app-id") + 1] == agent.app_id
        assert command[command.index("--app-port") + 1] == str(agent.port)
        assert app["user"] != "0" and not app["user"].startswith("0:") and app["read_only"] is True
        assert app["cap_drop"] == ["ALL"]


def test_the_model_key_reaches_only_the_sidecar_of_the_agent_that_uses_it():
    services = container.compose(SPEC)["services"]
    holders = [name for name, svc in services.items() if "LAB_SECRET_OPENAI_API_KEY" in svc.get("environment", {})]
    assert holders == ["buyers-dapr"]  # only buyers use the model component
    # Under local.env's prefix, from the variable of whoever runs compose.
    assert services["buyers-dapr"]["environment"]["LAB_SECRET_OPENAI_API_KEY"].startswith("${OPENAI_API_KEY:?")


def test_components_use_the_container_network_addresses():
    found = {
        m["value"] for c in container.resources(SPEC).values() for m in c["spec"].get("metadata", []) if "value" in m
    }
    assert "redis:6379" in found and "kafka:9092" in found
    assert not any("127.0.0.1" in value for value in found)


def test_rendered_dockerfiles_follow_every_rule():
    for agent in SPEC.agents:
        text = container.dockerfile(agent, SPEC)
        assert container.dockerfile_problems(text) == [], agent.app_id
        assert f"FROM {pins().image('agent_base')}" in text


GOOD = container.dockerfile(SPEC.agents[0], SPEC)


@pytest.mark.parametrize(
    "broken, complaint",
    [
        (GOOD.replace("FROM python:3.11.14-slim-bookworm AS build", "FROM python AS build"), "not pinned"),
        (GOOD.replace("FROM python:3.11.14-slim-bookworm AS build", "FROM python:latest AS build"), "not pinned"),
        (
            "\n".join(line for line in GOOD.splitlines() if "AS build" not in line and "--from=build" not in line),
            "multi-stage",
        ),
        (GOOD.replace("COPY lab_env ./lab_env", "ADD https://example.com/x.tgz /src"), "ADD"),
        (GOOD.replace("EXPOSE", "ENV OPENAI_API_KEY=sk-123\nEXPOSE"), "secret"),
        ("\n".join(line for line in GOOD.splitlines() if not line.startswith("USER")), "non-root USER"),
        (GOOD.replace("USER 10001:10001", "USER 0"), "non-root USER"),
        ("\n".join(line for line in GOOD.splitlines() if not line.startswith("HEALTHCHECK")), "HEALTHCHECK"),
        (
            GOOD.replace('CMD ["python", "-m", "uvicorn"', "CMD python -m uvicorn").replace(
                '", "--host", "127.0.0.1", "--port", "8101"]', " --port 8101"
            ),
            "shell form",
        ),
    ],
    ids=["untagged", "latest", "single-stage", "add", "secret-env", "no-user", "root", "no-healthcheck", "shell-cmd"],
)
def test_each_dockerfile_rule_catches_its_mistake(broken, complaint):
    assert broken != GOOD
    problems = container.dockerfile_problems(broken)
    assert any(complaint in p for p in problems), problems


def test_write_lays_out_the_home(tmp_path):
    path = container.write(SPEC, tmp_path / SPEC.home)
    # No top-level `name` (Debian's docker-compose 1.29 rejects it): the project is named after
    # the folder, which is the home's name.
    assert path.name == "compose.yaml" and "name" not in yaml.safe_load(path.read_text())
    assert path.parent.name == SPEC.home
    for agent in SPEC.agents:
        assert (path.parent / f"Dockerfile.{agent.app_id}").exists()
        assert (path.parent / "config" / f"{agent.app_id}.yaml").exists()
    assert sorted(p.name for p in (path.parent / "resources").iterdir()) == sorted(native.resources(SPEC))
    # Built from the repository, each by its own Dockerfile in the home: both absolute, so
    # compose finds them wherever the home is written (a learner's workspace is not in the repo).
    builds = [svc["build"] for svc in yaml.safe_load(path.read_text())["services"].values() if "build" in svc]
    assert builds and all(b["context"] == str(REPO_ROOT) for b in builds)
    assert all(Path(b["dockerfile"]).is_file() and Path(b["dockerfile"]).is_absolute() for b in builds)
    # No `# syntax=` line: BuildKit would fetch that frontend from a registry.
    assert not any(
        line.startswith("# syntax") for line in (path.parent / "Dockerfile.products").read_text().splitlines()
    )
