"""A capability directory as a Dapr actor (lab 06's discovery): one actor per
capability ("sell:books") lists the agents that offer it.

Lab 02's registry answered the same question over HTTP from one app's memory;
as an actor the directory is durable and spread over hosts by placement.
Registering twice changes nothing; a card's latest version wins.
"""

from __future__ import annotations

from dapr.actor import Actor, ActorInterface, actormethod


class DirectoryInterface(ActorInterface):
    @actormethod(name="Register")
    async def register(self, card: dict) -> bool: ...

    @actormethod(name="Withdraw")
    async def withdraw(self, agent: str) -> bool: ...

    @actormethod(name="Find")
    async def find(self) -> list[dict]: ...


class DirectoryActor(Actor, DirectoryInterface):
    """Its actor id is the capability; its state, the cards of the agents offering it."""

    async def _cards(self) -> dict[str, dict]:
        _, cards = await self._state_manager.try_get_state("cards")
        return cards or {}

    async def register(self, card: dict) -> bool:
        """True when the directory changed (a new agent, or a new version of its card)."""
        cards = await self._cards()
        if cards.get(card["id"]) == card:
            return False
        cards[card["id"]] = card
        await self._state_manager.set_state("cards", cards)
        await self._state_manager.save_state()
        return True

    async def withdraw(self, agent: str) -> bool:
        cards = await self._cards()
        if cards.pop(agent, None) is None:
            return False
        await self._state_manager.set_state("cards", cards)
        await self._state_manager.save_state()
        return True

    async def find(self) -> list[dict]:
        return sorted((await self._cards()).values(), key=lambda card: card["id"])
