"""Reference marketplace actors that later labs and the capstone host.

``ProductActor`` is lab 01's product with what workflows need: every
reservation carries the order id and is idempotent, so an activity that runs
twice (activities are at-least-once) reserves once, and a release undoes
exactly that order's reservation; a delivery carries its id and adds to the
stock once.

``BuyerAgent`` and ``SellerAgent`` negotiate a price (lab 04). Each keeps
its private limit and its offer history in actor state. Offers follow a
linear concession from an opening price to the limit over ``rounds`` rounds:
the buyer only goes up, the seller only comes down, and asking twice for the
same round returns the same offer.

Actor types are registered per run (lab_env.runtime.actors.for_this_run); call them
with ``actor_type("ProductActor")`` and friends.
"""

from __future__ import annotations

from dapr.actor import Actor, ActorInterface, actormethod


class ProductInterface(ActorInterface):
    @actormethod(name="Stock")
    async def stock(self) -> int: ...

    @actormethod(name="Restock")
    async def restock(self, quantity: int) -> int: ...

    @actormethod(name="Reserve")
    async def reserve(self, request: dict) -> dict: ...

    @actormethod(name="Release")
    async def release(self, order_id: str) -> dict: ...

    @actormethod(name="Deliver")
    async def deliver(self, delivery: dict) -> int: ...


class ProductActor(Actor, ProductInterface):
    """Stock plus the reservations that hold part of it, by order id.

    An active actor is the only writer of its state (one activation, one
    turn at a time), so it reads its state once when activated and keeps it
    in memory; every change is saved before the call returns. (The SDK's
    state manager caches only keys that exist, so a product with no saved
    state would otherwise read Redis on every call.)
    """

    async def _on_activate(self) -> None:
        _, saved = await self._state_manager.try_get_state("product")
        self._product = {"stock": 0, "reservations": {}, "deliveries": [], **(saved or {})}

    async def _load(self) -> tuple[int, dict[str, int]]:
        return self._product["stock"], dict(self._product["reservations"])

    async def _save(self, stock: int, held: dict[str, int], deliveries: list[str] | None = None) -> None:
        self._product = {
            "stock": stock,
            "reservations": held,
            "deliveries": self._product["deliveries"] if deliveries is None else deliveries,
        }
        await self._state_manager.set_state("product", self._product)
        await self._state_manager.save_state()

    async def stock(self) -> int:
        return (await self._load())[0]

    async def restock(self, quantity: int) -> int:
        stock, held = await self._load()
        await self._save(stock + quantity, held)
        return stock + quantity

    async def reserve(self, request: dict) -> dict:
        order, quantity = request["order_id"], int(request["quantity"])
        stock, held = await self._load()
        if order in held:  # a repeated call: the order already holds its stock
            return {"ok": True, "stock": stock, "repeat": True}
        if quantity > stock:
            return {"ok": False, "stock": stock}
        held[order] = quantity
        await self._save(stock - quantity, held)
        return {"ok": True, "stock": stock - quantity}

    async def deliver(self, delivery: dict) -> int:
        """Add a delivery's ``quantity`` to the stock once per ``delivery_id``
        (a retried activity delivers again: the stock counts it once)."""
        stock, held = await self._load()
        if delivery["delivery_id"] in self._product["deliveries"]:
            return stock
        await self._save(
            stock + int(delivery["quantity"]), held, [*self._product["deliveries"], delivery["delivery_id"]]
        )
        return stock + int(delivery["quantity"])

    async def release(self, order_id: str) -> dict:
        stock, held = await self._load()
        quantity = held.pop(order_id, 0)
        if quantity:
            await self._save(stock + quantity, held)
        return {"released": quantity, "stock": stock + quantity}


class NegotiatorInterface(ActorInterface):
    @actormethod(name="Setup")
    async def setup(self, terms: dict) -> None: ...

    @actormethod(name="Offer")
    async def offer(self, round_no: int) -> float: ...

    @actormethod(name="History")
    async def history(self) -> list: ...

    @actormethod(name="Terms")
    async def terms(self) -> dict: ...

    @actormethod(name="Record")
    async def record(self, offer: dict) -> float: ...


class _Negotiator(Actor, NegotiatorInterface):
    async def _offers(self) -> dict:
        """The offers made so far, by round (as a string); Setup starts them."""
        _, offers = await self._state_manager.try_get_state("offers")
        if offers is None:
            raise ValueError(f"{self.id.id} has no terms: call Setup first")
        return offers

    async def setup(self, terms: dict) -> None:
        """terms: limit (private), opening and rounds."""
        await self._state_manager.set_state("terms", {k: terms[k] for k in ("limit", "opening", "rounds")})
        await self._state_manager.set_state("offers", {})
        await self._state_manager.save_state()

    async def offer(self, round_no: int) -> float:
        _, terms = await self._state_manager.try_get_state("terms")
        if not terms:
            raise ValueError(f"{self.id.id} has no terms: call Setup first")
        offers = await self._offers()
        key = str(round_no)
        if key in offers:  # asked again for the same round (a retried activity)
            return offers[key]
        share = min(1.0, round_no / max(1, terms["rounds"] - 1))
        price = round(terms["opening"] + (terms["limit"] - terms["opening"]) * share, 2)
        offers[key] = price
        await self._state_manager.set_state("offers", offers)
        await self._state_manager.save_state()
        return price

    async def history(self) -> list:
        _, offers = await self._state_manager.try_get_state("offers")
        offers = offers or {}
        return [offers[k] for k in sorted(offers, key=int)]

    async def terms(self) -> dict:
        """The private terms and the offers made so far (for a policy deciding the next one)."""
        _, terms = await self._state_manager.try_get_state("terms")
        if not terms:
            raise ValueError(f"{self.id.id} has no terms: call Setup first")
        _, offers = await self._state_manager.try_get_state("offers")
        return {**terms, "offers": offers or {}}

    async def record(self, offer: dict) -> float:
        """Keep an offer decided elsewhere (the capstone's policies) for its round; the
        first one recorded stands, so a re-run activity cannot change an offer made."""
        offers = await self._offers()
        key = str(offer["round"])
        if key not in offers:
            offers[key] = round(float(offer["price"]), 2)
            await self._state_manager.set_state("offers", offers)
            await self._state_manager.save_state()
        return offers[key]


class BuyerAgent(_Negotiator):
    """Opens low and concedes up to its limit, the most it will pay."""


class SellerAgent(_Negotiator):
    """Opens high and concedes down to its limit, the least it will take."""
