"""Lab 05's container home under real compose, on lab-env's own Docker engine with the bakery's images.

The devcontainer's own compose file starts the stack's services (redis, kafka, placement,
scheduler) in containers; the marketplace home, rendered by lab_env.marketplace.homes.container,
starts on their network: per agent a pod, the agent (read-only, every capability dropped)
and its daprd sidecar. A product actor is called through its sidecar, the agent's process is
SIGKILLed, its restart policy brings it back in the same pod, and the actor's state is there.

Marked `containers`: `make test` runs it (root; `lab-env setup --containers`); LAB_ENV_CONTAINERS=0 leaves it out.
The first run builds the agent images (pip installs lab_env in them) and takes minutes.
"""

from __future__ import annotations

import os

import pytest

from lab_env.core.names import run_token
from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import container, container_run
from lab_env.marketplace.homes.spec import load
from lab_env.stack.images import catalog
from tests import own_engine

# The containers lane (tests/run_suite.py) runs these files one after another, beside phase 1.
pytestmark = [pytest.mark.containers]
ours = own_engine.ours  # the fixture

SPEC = load(os.path.join(os.path.dirname(container.__file__), "marketplace.yaml"))
HOME_ENV = {"OPENAI_API_KEY": "not-used-by-this-test"}


@pytest.fixture(scope="module")
def home(ours, tmp_path_factory):
    """The stack's services and the marketplace home on lab-env's engine, on the local images.
    One home for the module: its tests stop or crash different agents."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(catalog.IMAGE_SET_VAR, "local")
        started = container_run.start(SPEC, tmp_path_factory.mktemp("home") / SPEC.home, HOME_ENV)
        try:
            yield started
        finally:
            started.stop()
    assert not ours.check("ps", "-aq", "--filter", f"label=com.docker.compose.project={started.project}").split()


def test_the_home_runs_and_a_killed_agent_comes_back_with_its_actor_state(ours, home):
    products = home.container("products")
    # Hardened as rendered: read-only root, no capability, not root.
    config = home.inspect("products")["HostConfig"]
    assert config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"]
    assert ours.check("exec", products, "id", "-u").strip() == str(container.AGENT_UID)
    assert {"products", "products-dapr", "products-pod", "redis"} <= {
        line.split()[0].split("_")[1] for line in home.ps().splitlines() if "_" in line.split()[0]
    }

    actor = f"/v1.0/actors/ProductActor-{run_token()}/sku-1/method"
    wait_until(
        lambda: home.try_call("products", f"{actor}/Stock").returncode == 0,
        container.HEALTHY_S,
        "the products sidecar to place the ProductActor type",
    )
    assert home.call("products", f"{actor}/Restock", 7) == "7"

    # A crash, not a stop: SIGKILL to the agent's process from outside. Its restart
    # policy starts it again, in the same pod, beside the same sidecar.
    before = home.inspect("products")["State"]["StartedAt"]
    home.crash("products")
    home.wait_restarted("products", before)
    wait_until(
        lambda: home.try_call("products", f"{actor}/Stock").stdout == "7",
        container.HEALTHY_S,
        "the actor to answer again with its state",
    )
    assert home.call("products", f"{actor}/Restock", 1) == "8"
    assert home.inspect("products")["RestartCount"] == 1


def test_docker_kill_is_a_stop_the_restart_policy_respects(home):
    home.kill("buyers")
    inspected = home.inspect("buyers")
    assert inspected["State"]["Status"] == "exited" and inspected["RestartCount"] == 0
    # Nothing brings it back: unless-stopped leaves a container stopped that was stopped on purpose.
    with pytest.raises(LabEnvError, match="restarted"):
        wait_until(lambda: home.inspect("buyers")["State"]["Status"] == "running", 15, "buyers to be restarted")
