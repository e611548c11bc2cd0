"""The native home: the marketplace spec rendered to a multi-app run file and
started by the real Dapr CLI (`dapr run -f`) on the live stack."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from lab_env.core.ports import free_ports
from lab_env.core.probes import wait_until
from lab_env.core.procs import port_is_free
from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import native
from lab_env.marketplace.homes.spec import isolated, load
from lab_env.runtime.actors import actor_type
from lab_env.runtime.apps import run_token

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "lab_env" / "marketplace" / "homes" / "marketplace.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    # Private app ids and ports: the lab 05 notebook runs the same spec.
    spec = isolated(load(SPEC), run_token(), free_ports(3))
    with native.running(
        spec, tmp_path_factory.mktemp("home"), REPO, secrets={"openai-api-key": "Bearer sk-home-test"}
    ) as running:
        yield spec, running
    # Nothing is left: the CLI's process group is gone and every port is free again.
    assert not psutil.pid_exists(running.pid) or psutil.Process(running.pid).status() == psutil.STATUS_ZOMBIE
    assert all(port_is_free(a.port) for a in spec.agents)
    assert all(
        httpx.get(f"{url}/v1.0/healthz").status_code != 204 for url in running.sidecars.values() if _answers(url)
    )


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
        return True
    except httpx.HTTPError:
        return False


def test_every_sidecar_loads_exactly_the_components_scoped_to_its_agent(home):
    spec, running = home
    assert [a.app_id for a in spec.agents] == [f"{name}-{run_token()}" for name in ("products", "buyers", "mediator")]
    for agent in spec.agents:
        loaded = {c["name"] for c in httpx.get(f"{running.sidecars[agent.app_id]}/v1.0/metadata").json()["components"]}
        scoped = {c.name for c in spec.components.values() if agent.app_id in c.scopes}
        assert loaded == scoped | {native.SECRET_STORE}, agent.app_id


def test_the_mediator_haggles_between_buyer_and_seller_actors(home):
    _, running = home
    sidecar = running.sidecars[f"mediator-{run_token()}"]
    for kind, agent, terms in (
        ("BuyerAgent", "home-buyer", {"limit": 90, "opening": 50, "rounds": 5}),
        ("SellerAgent", "home-seller", {"limit": 70, "opening": 120, "rounds": 5}),
    ):
        setup = httpx.put(f"{sidecar}/v1.0/actors/{actor_type(kind)}/{agent}/method/Setup", json=terms, timeout=30)
        assert setup.status_code == 200, setup.text
    instance = f"haggle-{actor_type('x')}"
    started = httpx.post(
        f"{sidecar}/v1.0/workflows/dapr/haggle/start",
        params={"instanceID": instance},
        json={"buyer": "home-buyer", "seller": "home-seller", "rounds": 5},
        timeout=30,
    )
    assert started.status_code == 202, started.text

    def state() -> dict:
        return httpx.get(f"{sidecar}/v1.0/workflows/dapr/{instance}", timeout=30).json()

    wait_until(
        lambda: state().get("runtimeStatus") in ("COMPLETED", "FAILED", "TERMINATED"), 120, "the haggle workflow"
    )
    state = state()
    assert state["runtimeStatus"] == "COMPLETED", state
    import json

    outcome = json.loads(state["properties"]["dapr.workflow.output"])
    # Bids 50, 60, 70, 80, 90 against asks 120, 107.5, 95, 82.5, 70: they cross in the fifth round, at (90 + 70) / 2.
    assert outcome == {"agreed": True, "price": 80.0, "rounds": 5}


def test_a_second_home_on_the_same_app_ports_is_refused_in_one_line(home, tmp_path):
    spec, _ = home
    with pytest.raises(
        LabEnvError, match=f"the home's app ports are taken: products-{run_token()}:{spec.agents[0].port}"
    ):
        native.start(spec, tmp_path, REPO)


def test_the_secret_store_serves_the_homes_secret_and_not_the_sidecars_environment(home):
    _, running = home
    sidecar = running.sidecars[f"buyers-{run_token()}"]
    bulk = httpx.get(f"{sidecar}/v1.0/secrets/{native.SECRET_STORE}/bulk", timeout=30)
    assert bulk.status_code == 200, bulk.text
    # Only the spec's secret: not PATH, HOME or anything else the sidecar inherited.
    assert bulk.json() == {"OPENAI_API_KEY": {"OPENAI_API_KEY": "Bearer sk-home-test"}}
    # Asked by name, PATH is looked up as LAB_SECRET_PATH, which is unset.
    path = httpx.get(f"{sidecar}/v1.0/secrets/{native.SECRET_STORE}/PATH", timeout=30)
    assert "/usr/bin" not in path.text and path.json() in ({}, {"PATH": ""}), path.text


def test_a_sidecar_port_taken_after_it_was_chosen_is_replaced_not_fatal(tmp_path, monkeypatch):
    # Another program binds a chosen port before the CLI checks it: the CLI refuses the run file, and
    # nothing has started yet, so the home starts again on fresh ports.
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    choices: list[list[int]] = []

    def first_choice_taken(count: int) -> list[int]:
        fresh = free_ports(count)
        choices.append([taken.getsockname()[1], *fresh[1:]] if not choices else fresh)
        return choices[-1]

    monkeypatch.setattr(native, "free_ports", first_choice_taken)
    spec = isolated(load(SPEC), f"taken{run_token()}", free_ports(3))
    try:
        with native.running(spec, tmp_path, REPO, secrets={"openai-api-key": "Bearer sk-home-test"}) as running:
            assert len(choices) == 2, "the refused run file was written again with fresh ports"
            urls = set(running.sidecars.values())
            assert f"http://127.0.0.1:{taken.getsockname()[1]}" not in urls
            assert all(httpx.get(f"{url}/v1.0/healthz", timeout=30).status_code == 204 for url in urls)
    finally:
        taken.close()
