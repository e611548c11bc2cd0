"""The counter actor's interface, shared by the app and its callers."""

from dapr.actor import ActorInterface, actormethod


class CounterInterface(ActorInterface):
    @actormethod(name="Increment")
    async def increment(self, by: int) -> int: ...

    @actormethod(name="Get")
    async def get(self) -> int: ...

    @actormethod(name="StartReminder")
    async def start_reminder(self, seconds: int) -> None: ...

    @actormethod(name="ReminderFires")
    async def reminder_fires(self) -> int: ...
