"""An actor app with one unfinished method, as a learner's app is before an
exercise is done (tests/notebooks/test_notebook_errors.py)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from dapr.actor import Actor, ActorInterface, actormethod
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from lab_env.runtime.actors import for_this_run


class ShelfInterface(ActorInterface):
    @actormethod(name="Restock")
    async def restock(self, quantity: int) -> int: ...

    @actormethod(name="Count")
    async def count(self) -> int: ...


class ShelfActor(Actor, ShelfInterface):
    async def restock(self, quantity: int) -> int:
        raise NotImplementedError("exercise not done yet: add quantity to the stored 'stock'")

    async def count(self) -> int:
        _, stock = await self._state_manager.try_get_state("stock")
        return stock or 0


@asynccontextmanager
async def lifespan(app: FastAPI):
    await actors.register_actor(for_this_run(ShelfActor))
    yield


app = FastAPI(lifespan=lifespan)
actors = DaprActor(app)
