"""A counter actor hosted by FastAPI, for the stack tests.

The actor type name comes from ACTOR_TYPE so each test run registers its own
type and never sees another run's actors.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from datetime import timedelta

from counter_interface import CounterInterface
from dapr.actor import Actor, Remindable
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI


class _Counter(Actor, CounterInterface, Remindable):
    async def increment(self, by: int) -> int:
        _, count = await self._state_manager.try_get_state("count")
        count = (count or 0) + by
        await self._state_manager.set_state("count", count)
        await self._state_manager.save_state()
        return count

    async def get(self) -> int:
        _, count = await self._state_manager.try_get_state("count")
        return count or 0

    async def start_reminder(self, seconds: int) -> None:
        await self.register_reminder("tick", b"", timedelta(seconds=seconds), timedelta(seconds=seconds))

    async def reminder_fires(self) -> int:
        _, fires = await self._state_manager.try_get_state("fires")
        return fires or 0

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        _, fires = await self._state_manager.try_get_state("fires")
        await self._state_manager.set_state("fires", (fires or 0) + 1)
        await self._state_manager.save_state()


# The SDK only sees Remindable among an actor class's direct bases, so the
# per-run subclass names it again.
Counter = type(os.environ.get("ACTOR_TYPE", "Counter"), (_Counter, Remindable), {})

ActorRuntime.set_actor_config(ActorRuntimeConfig(actor_idle_timeout=timedelta(minutes=5)))


@asynccontextmanager
async def lifespan(app: FastAPI):
    await actors.register_actor(Counter)
    yield


app = FastAPI(lifespan=lifespan)
actors = DaprActor(app)
