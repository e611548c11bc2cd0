"""An auctioneer agent as a Dapr actor (lab 06): one actor per auction.

Open starts the auction and registers a reminder for its deadline; the
reminder closes it, even when the host crashed in between (reminders live in
the scheduler, the auction in the state store). Bids carry an id: a bid sent
twice counts once. The rules are lab_env.coordination.auction's.

    uvicorn lab_env.agents.auctioneer:app --port ...
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import timedelta

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from ..actors import for_this_run, reuse_sidecar_connections
from ..coordination import auction as rules

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
    and reserve, or opening and increment."""

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
        auction = rules.new(terms["kind"], terms["item"], float(terms.get("reserve", 0)),
                            float(terms.get("opening", 0)), float(terms.get("increment", 1)))
        await self._keep(auction)
        await self.register_reminder(CLOSE, b"", timedelta(seconds=float(terms["seconds"])), timedelta(0))
        return {"opened": True}

    async def bid(self, bid: dict) -> bool:
        auction = await self._auction()
        if auction is None:
            raise ValueError(f"auction {self.id.id} is not open")
        accepted = auction.submit(str(bid["bid_id"]), str(bid["bidder"]), float(bid["amount"]))
        if accepted:
            await self._keep(auction)
        return accepted

    async def outcome(self) -> dict | None:
        _, outcome = await self._state_manager.try_get_state("outcome")
        return outcome

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        if name != CLOSE:
            return
        auction = await self._auction()
        if auction is not None and not auction.closed:
            result = auction.close()
            await self._keep(auction, {"winner": result.winner, "price": result.price, "bids": result.bids})
        await self.unregister_reminder(CLOSE)


@asynccontextmanager
async def lifespan(app: FastAPI):
    reuse_sidecar_connections()
    await actors.register_actor(for_this_run(AuctioneerActor))
    yield


app = FastAPI(title="auctioneer", lifespan=lifespan)
actors = DaprActor(app)


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}
