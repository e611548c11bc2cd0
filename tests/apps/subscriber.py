"""A pub/sub subscriber that remembers what it received, for the stack tests.

PUBSUB and TOPIC (env) choose what it subscribes to; GET /received lists the
event data in arrival order.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request

PUBSUB = os.environ["PUBSUB"]
TOPIC = os.environ["TOPIC"]

app = FastAPI()
received: list[object] = []


@app.get("/dapr/subscribe")
def subscriptions() -> list[dict[str, str]]:
    return [{"pubsubname": PUBSUB, "topic": TOPIC, "route": "/events"}]


@app.post("/events")
async def on_event(request: Request) -> dict[str, str]:
    envelope = await request.json()
    received.append(envelope.get("data"))
    return {"status": "SUCCESS"}


@app.get("/received")
def list_received() -> list[object]:
    return received
