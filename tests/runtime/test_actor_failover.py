"""Actors move to the host that is left, with their state, only among replicas of one app id.

Against the real stack's placement and Redis, with the reference ProductActor host: what lab 01's
"Two hosts" section shows, asserted.
"""

from __future__ import annotations

import pytest

from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs.checks import verdict
from lab_env.labs.lab01_actors import checks as lab01
from lab_env.runtime.actors import actor_type_in, invoke, placement_table
from lab_env.runtime.apps import start_app, stop_app, unique_name, uvicorn_command
from lab_env.runtime.scale import placement_spread
from tests.grading.solution_mutations import rejected, written

pytestmark = pytest.mark.stack

HOST = uvicorn_command("lab_env.marketplace.agents.product_host:app")
IDS = [f"mover-{n}" for n in range(16)]
PLACEMENT_S = 60.0  # a safety net: placement drops a killed host within a second


def _hosts_of(app_id: str) -> list[dict]:
    return [row for row in placement_table() if row["app_id"] == app_id]


def test_a_replica_takes_over_a_killed_hosts_actors_with_their_state():
    first = start_app(unique_name("failover-a"), HOST, components=["statestore"])
    replica = start_app(unique_name("failover-b"), HOST, components=["statestore"], replica_of=first.app_id)
    try:
        product = actor_type_in(first, "ProductActor")
        rows = _hosts_of(first.app_id)
        assert len(rows) == 2 and all(product in row["actor_types"] for row in rows), rows
        for n, actor_id in enumerate(IDS):
            invoke(first, product, actor_id, "Restock", 10 + n)
        spread = placement_spread([first, replica], product)
        assert all(spread.values()), f"placement put every actor on one host: {spread}"
        replica.crash()
        wait_until(lambda: len(_hosts_of(first.app_id)) == 1, PLACEMENT_S, "placement to drop the killed replica")
        assert [invoke(first, product, actor_id, "Stock") for actor_id in IDS] == [10 + n for n in range(len(IDS))]
    finally:
        stop_app(replica)
        stop_app(first)


def test_a_host_with_another_app_id_does_not_see_the_actors_state():
    owner = start_app(unique_name("failover-owner"), HOST, components=["statestore"])
    try:
        product = actor_type_in(owner, "ProductActor")
        invoke(owner, product, "kept", "Restock", 7)
    finally:
        stop_app(owner)
    other = start_app(unique_name("failover-other"), HOST, components=["statestore"])
    try:
        # Same actor type and id, another app id: Dapr keys actor state by the host's app id.
        assert invoke(other, product, "kept", "Stock") == 0
    finally:
        stop_app(other)


@pytest.fixture(scope="module")
def lab_app(tmp_path_factory):
    """Lab 01's own actor app, as its notebook writes it: the failover check asks its /lifecycle log."""
    folder = tmp_path_factory.mktemp("lab01-failover")
    written(folder, SOLUTIONS_DIR / "01_actors.ipynb", "marketplace_actors.py")
    return uvicorn_command("marketplace_actors:app"), folder


def test_lab01_failover_check_rejects_an_annex_under_its_own_app_id_and_passes_a_replica(lab_app):
    command, folder = lab_app
    market = start_app(unique_name("fo-market"), command, cwd=folder, components=["statestore"])
    try:
        rejected(lab01.failover, market, None, because="no annex")
        stranger = start_app(unique_name("fo-stranger"), command, cwd=folder, components=["statestore"])
        try:
            rejected(lab01.failover, market, stranger, because="the market looks for its state under another key")
        finally:
            stop_app(stranger)
        replica = start_app(
            unique_name("fo-replica"), command, cwd=folder, components=["statestore"], replica_of=market.app_id
        )
        try:
            assert verdict(lab01.failover, market, replica).passed
            assert replica.alive(), "the check restarts the annex it killed"
        finally:
            stop_app(replica)
    finally:
        stop_app(market)


def test_a_host_without_the_actor_state_store_is_given_actors_it_cannot_serve():
    """Lab 05's claim for least privilege: placement gives actors to a host whose sidecar lacks the actor state
    store, and their calls fail there (Dapr 1.18.2: the sidecar drops the app's state call)."""
    first = start_app(unique_name("stateful"), HOST, components=["statestore"])
    stateless = start_app(unique_name("stateless"), HOST, components=[], replica_of=first.app_id)
    try:
        product = actor_type_in(first, "ProductActor")
        assert len(_hosts_of(first.app_id)) == 2  # both hosts announce the type; placement uses both
        spread = {}
        for actor_id in IDS:
            try:
                invoke(first, product, actor_id, "Restock", 1, timeout=30)
                spread[actor_id] = "served"
            except LabEnvError as failed:
                spread[actor_id] = str(failed)
        failed = [why for why in spread.values() if why != "served"]
        assert failed and len(failed) < len(IDS), spread  # some ids land on each host
        assert all("(500)" in why for why in failed), failed
    finally:
        stop_app(stateless)
        stop_app(first)
