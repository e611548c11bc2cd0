"""The auctioneer actor (lab 06) on the live stack: a sealed-bid auction
closed by its reminder after the host was SIGKILLed mid-auction, every
retried bid counted once."""

from __future__ import annotations

import pytest

from lab_env import start_app, stop_app, unique_name, uvicorn_command
from lab_env.core.probes import wait_until
from lab_env.runtime.actors import actor_type, invoke

pytestmark = pytest.mark.stack


@pytest.fixture
def host():
    app = start_app(
        unique_name("auctioneer"),
        uvicorn_command("lab_env.marketplace.agents.auctioneer:app"),
        components=["statestore"],
    )
    yield app
    stop_app(app)


def _call(app, auction: str, method: str, body=None):
    return invoke(app, actor_type("AuctioneerActor"), auction, method, body)


def test_a_vickrey_auction_outlives_its_host_and_counts_each_bid_once(host):
    auction = unique_name("lamp")
    assert _call(host, auction, "Open", {"kind": "vickrey", "item": "lamp", "seconds": 6}) == {"opened": True}
    assert _call(host, auction, "Open", {"kind": "vickrey", "item": "lamp", "seconds": 6}) == {"opened": False}
    for n in range(20):
        assert _call(host, auction, "Bid", {"bid_id": f"b{n}", "bidder": f"bidder-{n}", "amount": 10 + n}) is True
    # A retried bid (same id, any amount) changes nothing.
    assert _call(host, auction, "Bid", {"bid_id": "b3", "bidder": "bidder-3", "amount": 1000}) is False
    host.crash()
    host.restart()
    wait_until(lambda: _call(host, auction, "Outcome") is not None, 60, "the auction's close reminder")
    # The highest bid (29) wins and pays the second highest (28).
    assert _call(host, auction, "Outcome") == {"winner": "bidder-19", "price": 28.0, "bids": 20}
