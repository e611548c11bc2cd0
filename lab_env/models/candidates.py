"""The course's agent specifications and, for each, the candidate
implementations the offline model server answers with.

A specification is text a learner (or the course) writes: an agent's
methods, invariants, durability and failure behaviour. Its first line is its
title, ``# Spec: <name>``; the offline server knows a specification by that
title only (a real model reads the rest).

Every spec has one correct candidate and several with one planted bug each,
the mistakes generated code makes: state not saved, state shared outside the
actor, a step that is not idempotent, a broken invariant, a missing
compensation. A bug is an edit of the correct source, so each candidate
differs from it where its bug is and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TITLE_PREFIX = "# Spec: "
_TITLE = re.compile(r"#+\s*spec:\s*(.+)", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    name: str
    bug: str | None  # the planted bug in words; None for the correct candidate
    source: str  # a Python module that defines an ASGI app ``app`` hosting the spec's actor


@dataclass(frozen=True)
class Specification:
    name: str
    actor: str  # the actor class every candidate defines (its type is made unique per run)
    text: str
    candidates: tuple[Candidate, ...]  # in the order the offline server offers them

    @property
    def title(self) -> str:
        return f"{TITLE_PREFIX}{self.name}"


PRODUCT_SPEC_TEXT = """\
# Spec: product agent

An actor per product, type ProductAgent, hosted by a FastAPI app with Dapr's actor runtime.

Methods
Callers send positive quantities only.

- Restock(quantity: int) -> int: adds quantity to the stock and returns the stock.
- Stock() -> int: the stock.
- Reserve({"order_id": str, "quantity": int}) -> {"ok": bool, "stock": int}: holds quantity
  for the order and takes it from the stock; ok is false, and nothing changes, when the
  stock is smaller than quantity.
- Release(order_id: str) -> {"ok": bool, "stock": int}: the compensation of Reserve: the
  order's held quantity goes back to the stock; ok is always true. An order that holds
  nothing changes nothing.

Invariants
- The stock is never negative.
- An order holds at most one reservation per product.
- Each product's stock and reservations are its own.

Durability
- Every change is in the actor's state store before the call returns: a restarted host
  finds it.

Failures
- A repeated Reserve of an order (a retry) changes nothing and answers ok.
- A repeated Release changes nothing: the quantity goes back once.
"""

_PRODUCT_AGENT = '''\
"""ProductAgent, generated from the specification "product agent"."""

from __future__ import annotations

from contextlib import asynccontextmanager

from dapr.actor import Actor, ActorInterface, actormethod
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from lab_env.runtime.actors import for_this_run, reuse_sidecar_connections


class ProductAgentInterface(ActorInterface):
    @actormethod(name="Restock")
    async def restock(self, quantity: int) -> int: ...

    @actormethod(name="Stock")
    async def stock(self) -> int: ...

    @actormethod(name="Reserve")
    async def reserve(self, request: dict) -> dict: ...

    @actormethod(name="Release")
    async def release(self, order_id: str) -> dict: ...


class ProductAgent(Actor, ProductAgentInterface):
    async def _load(self) -> dict:
        _, saved = await self._state_manager.try_get_state("product")
        return saved or {"stock": 0, "held": {}}

    async def _save(self, product: dict) -> None:
        await self._state_manager.set_state("product", product)
        await self._state_manager.save_state()

    async def restock(self, quantity: int) -> int:
        product = await self._load()
        product["stock"] += int(quantity)
        await self._save(product)
        return product["stock"]

    async def stock(self) -> int:
        return (await self._load())["stock"]

    async def reserve(self, request: dict) -> dict:
        product = await self._load()
        order, quantity = request["order_id"], int(request["quantity"])
        if order in product["held"]:
            return {"ok": True, "stock": product["stock"]}
        if quantity > product["stock"]:
            return {"ok": False, "stock": product["stock"]}
        product["stock"] -= quantity
        product["held"][order] = quantity
        await self._save(product)
        return {"ok": True, "stock": product["stock"]}

    async def release(self, order_id: str) -> dict:
        product = await self._load()
        quantity = product["held"].pop(order_id, 0)
        product["stock"] += quantity
        await self._save(product)
        return {"ok": True, "stock": product["stock"]}


@asynccontextmanager
async def lifespan(app: FastAPI):
    reuse_sidecar_connections()
    await actors.register_actor(for_this_run(ProductAgent))
    yield


app = FastAPI(title="product agent", lifespan=lifespan)
actors = DaprActor(app)
'''

# Each bug: its name, what it is, and the edits that plant it in the correct source.
_PRODUCT_BUGS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "double-reserve": (
        "a repeated Reserve holds the stock again (the step is not idempotent)",
        [('        if order in product["held"]:\n            return {"ok": True, "stock": product["stock"]}\n', "")],
    ),
    "unsaved": (
        "the state lives in the actor object only: a restarted host forgets it",
        [
            (
                '        _, saved = await self._state_manager.try_get_state("product")\n'
                '        return saved or {"stock": 0, "held": {}}\n',
                '        return getattr(self, "_product", None) or {"stock": 0, "held": {}}\n',
            ),
            (
                '        await self._state_manager.set_state("product", product)\n'
                "        await self._state_manager.save_state()\n",
                "        self._product = product\n",
            ),
        ],
    ),
    "oversell": (
        "Reserve takes more than the stock (the stock goes negative)",
        [
            (
                '        if quantity > product["stock"]:\n'
                '            return {"ok": False, "stock": product["stock"]}\n',
                "",
            )
        ],
    ),
    "shared": (
        "the state is a module variable shared by every product on the host, outside the actors' turns",
        [
            (
                '        _, saved = await self._state_manager.try_get_state("product")\n'
                '        return saved or {"stock": 0, "held": {}}\n',
                '        return _SHARED.setdefault("product", {"stock": 0, "held": {}})\n',
            ),
            (
                '        await self._state_manager.set_state("product", product)\n'
                "        await self._state_manager.save_state()\n",
                "        _SHARED['product'] = product\n",
            ),
            (
                "class ProductAgent(Actor, ProductAgentInterface):\n",
                "_SHARED: dict = {}\n\n\nclass ProductAgent(Actor, ProductAgentInterface):\n",
            ),
        ],
    ),
    "double-release": (
        "a repeated Release gives the order's quantity back again",
        [
            (
                '        quantity = product["held"].pop(order_id, 0)\n',
                '        quantity = product["held"].get(order_id, 0)\n',
            )
        ],
    ),
    "no-compensation": (
        "Release forgets the reservation but does not give its quantity back",
        [('        product["stock"] += quantity\n', "")],
    ),
}


def planted(source: str, edits: list[tuple[str, str]], bug: str) -> str:
    """``source`` with each (old, new) edit made once; an edit that finds nothing is a mistake here."""
    for old, new in edits:
        if source.count(old) != 1:
            raise ValueError(f"bug {bug!r}: its edit must match the correct source exactly once: {old[:60]!r}")
        source = source.replace(old, new)
    return source


def _product_candidates() -> tuple[Candidate, ...]:
    bad = [Candidate(name, what, planted(_PRODUCT_AGENT, edits, name)) for name, (what, edits) in _PRODUCT_BUGS.items()]
    good = Candidate("correct", None, _PRODUCT_AGENT)
    # The correct one is not first: a learner who takes the first answer meets a bug.
    return (bad[0], good, *bad[1:])


SPECIFICATIONS: dict[str, Specification] = {
    spec.name: spec
    for spec in (Specification("product agent", "ProductAgent", PRODUCT_SPEC_TEXT, _product_candidates()),)
}


def find(text: str) -> Specification | None:
    """The course specification whose title line (``# Spec: <name>``, any case) ``text`` contains, if any."""
    for line in text.splitlines():
        titled = _TITLE.fullmatch(line.strip())
        if titled:
            return SPECIFICATIONS.get(" ".join(titled[1].split()).lower())
    return None
