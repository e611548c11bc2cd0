"""Lab 05's container home under real compose, on lab-env's own Docker engine with the bakery's images.

The devcontainer's own compose file starts the stack's services (redis, kafka, placement,
scheduler) in containers; the marketplace home, rendered by lab_env.marketplace.homes.container,
starts on their network: per agent a pod, the agent (read-only, every capability dropped)
and its daprd sidecar. A product actor is called through its sidecar, the agent's process is
SIGKILLed, its restart policy brings it back in the same pod, and the actor's state is there.

Marked `containers`: run with LAB_ENV_CONTAINERS=1 (root; `lab-env setup --containers`).
The first run builds the agent images (pip installs lab_env in them) and takes minutes.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from lab_env.core.names import run_token
from lab_env.core.probes import wait_until
from lab_env.marketplace.homes import container
from lab_env.marketplace.homes.spec import load
from lab_env.stack import engine
from lab_env.stack.images import bakery, catalog
from tests import own_engine

# serial: the tests that start lab-env's own engine share it, so they never run side by side.
pytestmark = [pytest.mark.containers, pytest.mark.serial]
ours = own_engine.ours  # the fixture

SPEC = load(os.path.join(os.path.dirname(container.__file__), "marketplace.yaml"))
HOME_ENV = {"OPENAI_API_KEY": "not-used-by-this-test"}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def network(ours, monkeypatch_module):
    """The devcontainer's services, from its compose file, on the local images."""
    monkeypatch_module.setenv(catalog.IMAGE_SET_VAR, "local")
    bakery.build(ours, ["redis", "kafka", "dapr", "busybox", "agent-base"])
    project = f"labenv{secrets.token_hex(3)}"
    try:
        yield container.stack_up(ours, project)
    finally:
        container.stack_down(ours, project)


# Run by the agent's Python: the call goes where the agent's own calls go, its sidecar on loopback.
CALL = """
import sys, urllib.request
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
request = urllib.request.Request(sys.argv[1], data=body, headers={"Content-Type": "application/json"})
sys.stdout.write(urllib.request.urlopen(request, timeout=30).read().decode())
"""


def _sidecar(
    ours: engine.Engine, agent: str, path: str, body: object | None = None
) -> subprocess.CompletedProcess[str]:
    """A call from inside ``agent`` to its sidecar at 127.0.0.1:3500."""
    extra = [json.dumps(body)] if body is not None else []
    return ours.docker("exec", agent, "python", "-c", CALL, f"http://127.0.0.1:3500{path}", *extra, timeout=120)


def _sidecar_call(ours: engine.Engine, agent: str, path: str, body: object | None = None) -> str:
    done = _sidecar(ours, agent, path, body)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_home_runs_and_a_killed_agent_comes_back_with_its_actor_state(ours, network, tmp_path: Path):
    home = f"home{secrets.token_hex(3)}"
    compose_file = container.write(SPEC, tmp_path / SPEC.home)
    try:
        container.home_up(ours, compose_file, home, network, HOME_ENV)
        products = container.compose_container(ours, home, "products")
        # Hardened as rendered: read-only root, no capability, not root.
        config = json.loads(ours.check("inspect", products))[0]["HostConfig"]
        assert config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"]
        assert ours.check("exec", products, "id", "-u").strip() == str(container.AGENT_UID)

        actor = f"/v1.0/actors/ProductActor-{run_token()}/sku-1/method"
        wait_until(
            lambda: _sidecar(ours, products, f"{actor}/Stock").returncode == 0,
            container.HEALTHY_S,
            "the products sidecar to place the ProductActor type",
        )
        assert _sidecar_call(ours, products, f"{actor}/Restock", 7) == "7"

        # A crash, not a stop: SIGKILL to the agent's process from outside. Its restart
        # policy starts it again, in the same pod, beside the same sidecar.
        started = json.loads(ours.check("inspect", products))[0]["State"]["StartedAt"]
        os.kill(int(ours.check("inspect", "--format", "{{.State.Pid}}", products)), 9)
        wait_until(
            lambda: json.loads(ours.check("inspect", products))[0]["State"]["StartedAt"] != started,
            container.HEALTHY_S,
            "the products agent to be restarted by its restart policy",
        )
        container.wait_healthy(ours, products, "the restarted agent to be healthy")
        wait_until(
            lambda: _sidecar(ours, products, f"{actor}/Stock").stdout == "7",
            container.HEALTHY_S,
            "the actor to answer again with its state",
        )
        assert _sidecar_call(ours, products, f"{actor}/Restock", 1) == "8"
    finally:
        container.home_down(ours, compose_file, home, HOME_ENV)
