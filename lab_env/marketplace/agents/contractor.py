"""A seller agent as a contractor in lab 06's contract net, one app per seller.

Buyers reach it by Dapr service invocation (its app id, a method), so it is
also the peer of lab 06's peer-to-peer section. Its behaviour comes from the
environment, so one module plays every kind of seller:

    CONTRACTOR_PRICE, CONTRACTOR_DAYS   what it proposes
    CONTRACTOR_BEHAVIOUR                reliable (default): proposes, does the work, reports done
                                        refuses:  answers every call for proposals with a refusal
                                        late:     proposes only after CONTRACTOR_DELAY_S seconds
                                        crashes:  the process dies when it is awarded a task
                                        hangs:    never finishes an awarded task in time
                                        fails:    reports the awarded task failed

Every message it receives is kept in order (GET /inbox), so a check can see
that each loser was told and that each award arrived once.

With RFQ_TOPIC set it also takes calls for quotes from that topic (lab 06
compares them with direct calls); with DISCOVERY_TOPIC, it keeps the agent
cards announced there (GET /known), as a buyer discovering sellers would.

    uvicorn lab_env.marketplace.agents.contractor:app --port ...
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

BEHAVIOURS = {"reliable", "refuses", "late", "crashes", "hangs", "fails"}
app = FastAPI(title="contractor")
inbox: list[dict] = []


known: list[dict] = []


class Message(BaseModel):
    task: str


def _behaviour() -> str:
    behaviour = os.environ.get("CONTRACTOR_BEHAVIOUR", "reliable")
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"CONTRACTOR_BEHAVIOUR={behaviour!r}: choose one of {sorted(BEHAVIOURS)}")
    return behaviour


def _keep(kind: str, message: Message) -> None:
    inbox.append({"kind": kind, "task": message.task, "at": time.time()})


@app.get("/healthz")
def healthz() -> Response:
    return Response(status_code=204)


@app.post("/cfp")
async def call_for_proposals(message: Message) -> dict:
    """A call for proposals: a proposal {price, days}, or a refusal."""
    _keep("cfp", message)
    behaviour = _behaviour()
    if behaviour == "refuses":
        return {"refuse": True}
    if behaviour == "late":
        await asyncio.sleep(float(os.environ.get("CONTRACTOR_DELAY_S", "5")))
    return {"price": float(os.environ["CONTRACTOR_PRICE"]), "days": int(os.environ.get("CONTRACTOR_DAYS", "1"))}


@app.post("/award")
async def award(message: Message) -> dict:
    """The task is ours: do it and report how it went."""
    _keep("award", message)
    behaviour = _behaviour()
    if behaviour == "crashes":
        os._exit(3)  # a real crash: no reply, no clean-up, the process is gone
    if behaviour == "hangs":
        await asyncio.sleep(60)
    await asyncio.sleep(0.05)  # the work
    return {"done": behaviour != "fails"}


@app.post("/reject")
def reject(message: Message) -> dict:
    _keep("reject", message)
    return {"ok": True}


@app.post("/quote")
def quote(message: Message) -> dict:
    """A direct question from a peer (lab 06's peer-to-peer section)."""
    _keep("quote", message)
    return {"seller": os.environ.get("APP_ID", "?"), "price": float(os.environ.get("CONTRACTOR_PRICE", "0"))}


@app.get("/dapr/subscribe")
def subscriptions() -> list[dict]:
    routes = {"RFQ_TOPIC": "/rfq", "DISCOVERY_TOPIC": "/cards"}
    return [
        {"pubsubname": "pubsub", "topic": os.environ[name], "route": route}
        for name, route in routes.items()
        if os.environ.get(name)
    ]


@app.post("/rfq")
async def request_for_quotes(request: Request) -> dict:
    event = await request.json()
    _keep("rfq", Message(task=event["data"]["task"]))
    return {"status": "SUCCESS"}


@app.post("/cards")
async def card(request: Request) -> dict:
    known.append((await request.json())["data"])
    return {"status": "SUCCESS"}


@app.get("/known")
def read_known() -> list[dict]:
    return known


@app.get("/inbox")
def read_inbox() -> list[dict]:
    return inbox


def start_sellers(
    sellers: dict[str, tuple[float, int, str]], *, env: dict[str, str] | None = None, prefix: str = ""
) -> dict:
    """Start one contractor app per seller, in parallel: {name: (price, days, behaviour)}.

    Returns {name: DaprApp}; the app ids are unique_name(prefix + name), so a
    check and the notebook never share a seller. ``env`` goes to every seller
    (RFQ_TOPIC, DISCOVERY_TOPIC, CONTRACTOR_DELAY_S).
    """
    from lab_env.runtime.apps import start_apps, unique_name, uvicorn_command

    ids = {name: unique_name(prefix + name) for name in sellers}
    apps = start_apps(
        {
            ids[name]: {
                "command": uvicorn_command("lab_env.marketplace.agents.contractor:app"),
                "components": ["pubsub"],
                "env": {
                    "CONTRACTOR_PRICE": str(price),
                    "CONTRACTOR_DAYS": str(days),
                    "CONTRACTOR_BEHAVIOUR": behaviour,
                    **(env or {}),
                },
            }
            for name, (price, days, behaviour) in sellers.items()
        }
    )
    return {name: apps[ids[name]] for name in sellers}


def read_inbox_of(seller) -> list[dict] | None:
    """A seller app's messages in order of arrival, or None when its process is gone."""
    import httpx

    from lab_env.runtime.sidecar import client  # the app's own route, on the process's keep-alive client

    try:
        return client(keep_alive=False).get(f"{seller.app_url}/inbox", timeout=10).raise_for_status().json()
    except httpx.TransportError:
        return None
