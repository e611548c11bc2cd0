"""An auctioneer agent as a Dapr actor (lab 06): one actor per auction.

Open starts the auction and schedules its close: a reminder, which closes it
even when the host crashed in between (reminders live in the scheduler, the
auction in the state store). An auction that names how many bidders it
invited also closes as soon as all of them have bid. Bids carry an id: a bid
sent twice counts once. The rules are lab_env.marketplace.coordination.auction's.

BidderActor is a bidder agent with a private valuation: asked to bid, it
sends the auctioneer one sealed bid whose id names the auction and the
bidder, so a retried Bid changes nothing.

    uvicorn lab_env.marketplace.agents.auctioneer:app --port ...

Lab 06 subclasses AuctioneerActor and writes schedule_close,
receive_reminder and vickrey_price itself; this module's versions are the reference.
"""

from __future__ import annotations

import hashlib
from contextlib import asynccontextmanager
from datetime import timedelta

from dapr.actor import Actor, ActorId, ActorInterface, ActorProxy, Remindable, actormethod
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from lab_env.marketplace.coordination import auction as rules
from lab_env.runtime.actors import actor_type, for_this_run, reuse_sidecar_connections

CLOSE = "close"


class AuctioneerInterface(ActorInterface):
    @actormethod(name="Open")
    async def open(self, terms: dict) -> dict: ...

    @actormethod(name="Bid")
    async def bid(self, bid: dict) -> bool: ...

    @actormethod(name="Outcome")
    async def outcome(self) -> dict | None: ...


class AuctioneerActor(Actor, AuctioneerInterface, Remindable):
    """terms: kind (sealed, vickrey, english), item, seconds to the deadline,
    and reserve, or opening and increment; optionally bidders, the number
    invited (sealed bids only: the auction closes when all have bid)."""

    async def _auction(self) -> rules.SealedBid | rules.Ascending | None:
        _, saved = await self._state_manager.try_get_state("auction")
        return rules.restore(saved) if saved else None

    async def _keep(self, auction: rules.SealedBid | rules.Ascending, outcome: dict | None = None) -> None:
        await self._state_manager.set_state("auction", rules.dump(auction))
        if outcome is not None:
            await self._state_manager.set_state("outcome", outcome)
        await self._state_manager.save_state()

    async def open(self, terms: dict) -> dict:
        if await self._auction() is not None:  # opened before: a retried call changes nothing
            return {"opened": False}
        auction = rules.new(
            terms["kind"],
            terms["item"],
            float(terms.get("reserve", 0)),
            float(terms.get("opening", 0)),
            float(terms.get("increment", 1)),
        )
        await self._state_manager.set_state("invited", int(terms.get("bidders", 0)))
        await self._keep(auction)
        await self.schedule_close(float(terms["seconds"]))
        return {"opened": True}

    async def schedule_close(self, seconds: float) -> None:
        """Close the auction in ``seconds``, whatever happens to this host meanwhile."""
        await self.register_reminder(CLOSE, b"", timedelta(seconds=seconds), timedelta(0))

    async def close_auction(self) -> None:
        """Close it now (idempotent): the outcome is kept in the actor's state."""
        auction = await self._auction()
        if auction is not None and not auction.closed:
            result = auction.close(self.vickrey_price) if isinstance(auction, rules.SealedBid) else auction.close()
            await self._keep(auction, {"winner": result.winner, "price": result.price, "bids": result.bids})

    def vickrey_price(self, ranked: list[rules.Bid], reserve: float) -> float:
        """What the winner of a Vickrey auction pays (see rules.second_price_of)."""
        return rules.second_price_of(ranked, reserve)

    async def bid(self, bid: dict) -> bool:
        auction = await self._auction()
        if auction is None:
            raise ValueError(f"auction {self.id.id} is not open")
        accepted = auction.submit(str(bid["bid_id"]), str(bid["bidder"]), float(bid["amount"]))
        if accepted:
            await self._keep(auction)
            _, invited = await self._state_manager.try_get_state("invited")
            if invited and isinstance(auction, rules.SealedBid) and len(auction.bids) >= invited:
                await self.close_auction()  # every invited bidder has bid: no need to wait for the deadline
        return accepted

    async def outcome(self) -> dict | None:
        _, outcome = await self._state_manager.try_get_state("outcome")
        return outcome

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        if name == CLOSE:
            await self.close_auction()
            await self.unregister_reminder(CLOSE)


class BidderInterface(ActorInterface):
    @actormethod(name="Bid")
    async def bid(self, auction: str) -> bool: ...


def valuation(bidder: str, auction: str) -> float:
    """A bidder's private value for an auction's item: 1.00 to 1000.00, fixed per pair."""
    digest = hashlib.sha256(f"{bidder}@{auction}".encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % 99_900 / 100


class BidderActor(Actor, BidderInterface):
    """Bids its valuation (truthful bidding is the best strategy in a Vickrey auction)."""

    async def bid(self, auction: str) -> bool:
        auctioneer = ActorProxy.create(actor_type("AuctioneerActor"), ActorId(auction), AuctioneerInterface)
        return await auctioneer.Bid(
            {"bid_id": f"{auction}/{self.id.id}", "bidder": self.id.id, "amount": valuation(self.id.id, auction)}
        )


@asynccontextmanager
async def lifespan(app: FastAPI):
    reuse_sidecar_connections()
    await actors.register_actor(for_this_run(AuctioneerActor))
    await actors.register_actor(for_this_run(BidderActor))
    yield


app = FastAPI(title="auctioneer", lifespan=lifespan)
actors = DaprActor(app)


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}
