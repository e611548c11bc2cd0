"""Money and outcomes, each change applied once per order.

Workflow activities are at-least-once: a charge can be asked for twice when
the host dies between doing it and recording it. So every change names its
order, and an actor applies a given order's change once, whatever arrives.
"""

from __future__ import annotations

from dapr.actor import Actor, ActorInterface, actormethod


class WalletInterface(ActorInterface):
    @actormethod(name="Fund")
    async def fund(self, amount: float) -> float: ...

    @actormethod(name="Balance")
    async def balance(self) -> float: ...

    @actormethod(name="Debit")
    async def debit(self, entry: dict) -> dict: ...

    @actormethod(name="Credit")
    async def credit(self, entry: dict) -> dict: ...

    @actormethod(name="Refund")
    async def refund(self, order_id: str) -> dict: ...

    @actormethod(name="Entries")
    async def entries(self) -> dict: ...


class WalletActor(Actor, WalletInterface):
    """A buyer's or seller's money. ``entries`` keeps each order's movement, by kind."""

    async def _on_activate(self) -> None:
        _, saved = await self._state_manager.try_get_state("wallet")
        self._wallet = saved or {"balance": 0.0, "entries": {}}

    async def _save(self) -> None:
        await self._state_manager.set_state("wallet", self._wallet)
        await self._state_manager.save_state()

    async def fund(self, amount: float) -> float:
        self._wallet["balance"] = round(self._wallet["balance"] + float(amount), 2)
        await self._save()
        return self._wallet["balance"]

    async def balance(self) -> float:
        return self._wallet["balance"]

    async def debit(self, entry: dict) -> dict:
        """Take ``amount`` for ``order_id`` once; refused (ok False) when the money is not there."""
        key = f"debit:{entry['order_id']}"
        if key in self._wallet["entries"]:
            return {"ok": True, "repeat": True, "balance": self._wallet["balance"]}
        amount = round(float(entry["amount"]), 2)
        if amount > self._wallet["balance"]:
            return {"ok": False, "balance": self._wallet["balance"]}
        self._wallet["entries"][key] = amount
        self._wallet["balance"] = round(self._wallet["balance"] - amount, 2)
        await self._save()
        return {"ok": True, "balance": self._wallet["balance"]}

    async def credit(self, entry: dict) -> dict:
        key = f"credit:{entry['order_id']}"
        if key not in self._wallet["entries"]:
            amount = round(float(entry["amount"]), 2)
            self._wallet["entries"][key] = amount
            self._wallet["balance"] = round(self._wallet["balance"] + amount, 2)
            await self._save()
        return {"ok": True, "balance": self._wallet["balance"]}

    async def refund(self, order_id: str) -> dict:
        """Give back what ``order_id`` took, once (nothing if it took nothing)."""
        taken = self._wallet["entries"].get(f"debit:{order_id}")
        key = f"refund:{order_id}"
        if taken is None or key in self._wallet["entries"]:
            return {"refunded": 0.0, "balance": self._wallet["balance"]}
        self._wallet["entries"][key] = taken
        self._wallet["balance"] = round(self._wallet["balance"] + taken, 2)
        await self._save()
        return {"refunded": taken, "balance": self._wallet["balance"]}

    async def entries(self) -> dict:
        """Every movement, "debit:<order>" and so on: the audit trail of the balance sheet."""
        return dict(self._wallet["entries"])


class OrderInterface(ActorInterface):
    @actormethod(name="Settle")
    async def settle(self, outcome: dict) -> dict: ...

    @actormethod(name="Outcome")
    async def outcome(self) -> dict | None: ...

    @actormethod(name="Announced")
    async def announced(self) -> None: ...

    @actormethod(name="Holding")
    async def holding(self, host: str) -> None: ...


class OrderActor(Actor, OrderInterface):
    """An order's final outcome. The first Settle wins; later ones (a re-run) are counted, not applied.

    ``announced`` records that the outcome's event went out. Settling and
    publishing cannot be one step, so a crash between them makes the re-run
    publish again: events are at least once, and carry the order id for
    consumers to drop a repeat; the outcome itself is exactly once."""

    async def settle(self, outcome: dict) -> dict:
        _, settled = await self._state_manager.try_get_state("outcome")
        if settled is not None:
            settled["repeats"] = settled.get("repeats", 0) + 1
            await self._state_manager.set_state("outcome", settled)
            await self._state_manager.save_state()
            return {**settled, "new": False}
        await self._state_manager.set_state("outcome", {**outcome, "repeats": 0})
        await self._state_manager.save_state()
        return {**outcome, "new": True}

    async def outcome(self) -> dict | None:
        _, settled = await self._state_manager.try_get_state("outcome")
        return settled

    async def holding(self, host: str) -> None:
        """A drill: the outcome's event went out from ``host``, which holds it unmarked (control.place_orders)."""
        _, settled = await self._state_manager.try_get_state("outcome")
        if settled is not None:
            await self._state_manager.set_state("outcome", {**settled, "held_on": host})
            await self._state_manager.save_state()

    async def announced(self) -> None:
        _, settled = await self._state_manager.try_get_state("outcome")
        if settled is not None and not settled.get("announced"):
            await self._state_manager.set_state("outcome", {**settled, "announced": True})
            await self._state_manager.save_state()


class ReputationInterface(ActorInterface):
    @actormethod(name="Record")
    async def record(self, outcome: dict) -> dict: ...

    @actormethod(name="Standing")
    async def standing(self) -> dict: ...


class ReputationActor(Actor, ReputationInterface):
    """What a seller (the actor id is its wallet) did with the orders it was awarded: delivered or failed,
    each order counted once, since the activity that reports it is at-least-once. The contract net reads
    the standing (allocation.trust) before each award."""

    async def _on_activate(self) -> None:
        _, saved = await self._state_manager.try_get_state("reputation")
        self._outcomes: dict[str, bool] = saved or {}  # order id -> delivered

    async def record(self, outcome: dict) -> dict:
        order, delivered = str(outcome["order_id"]), bool(outcome["delivered"])
        if order not in self._outcomes:
            self._outcomes[order] = delivered
            await self._state_manager.set_state("reputation", self._outcomes)
            await self._state_manager.save_state()
        return await self.standing()

    async def standing(self) -> dict:
        delivered = sum(self._outcomes.values())
        return {"delivered": delivered, "failed": len(self._outcomes) - delivered}
