"""The reference ProductActor against the live stack: what makes it safe
for at-least-once callers (workflow activities) is idempotence per id."""

from __future__ import annotations

import pytest

from lab_env import stop_app
from lab_env.runtime import scale
from lab_env.runtime.actors import actor_type_in, invoke

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def products():
    (host,) = scale.start_hosts(1, name="t-products")
    try:
        yield host, actor_type_in(host, "ProductActor")
    finally:
        stop_app(host)


def test_a_delivery_counts_once_per_delivery_id(products):
    host, kind = products
    assert invoke(host, kind, "lamp", "Deliver", {"delivery_id": "reorder-1", "quantity": 10}) == 10
    assert invoke(host, kind, "lamp", "Deliver", {"delivery_id": "reorder-1", "quantity": 10}) == 10  # retried
    assert invoke(host, kind, "lamp", "Deliver", {"delivery_id": "reorder-2", "quantity": 5}) == 15
    assert invoke(host, kind, "lamp", "Stock") == 15


def test_deliveries_survive_deactivation_of_the_host(products):
    host, kind = products
    invoke(host, kind, "desk", "Deliver", {"delivery_id": "d-1", "quantity": 3})
    host.crash()
    host.restart()
    # The new activation reads the delivery ids back: the retry after the crash adds nothing.
    assert invoke(host, kind, "desk", "Deliver", {"delivery_id": "d-1", "quantity": 3}) == 3


def test_a_reservation_holds_once_per_order_and_a_release_returns_it(products):
    host, kind = products
    invoke(host, kind, "chair", "Restock", 4)
    assert invoke(host, kind, "chair", "Reserve", {"order_id": "o-1", "quantity": 3})["stock"] == 1
    assert invoke(host, kind, "chair", "Reserve", {"order_id": "o-1", "quantity": 3}) == {
        "ok": True,
        "stock": 1,
        "repeat": True,
    }
    assert invoke(host, kind, "chair", "Reserve", {"order_id": "o-2", "quantity": 2}) == {"ok": False, "stock": 1}
    assert invoke(host, kind, "chair", "Release", "o-1") == {"released": 3, "stock": 4}
    assert invoke(host, kind, "chair", "Release", "o-1") == {"released": 0, "stock": 4}
