"""The carrier: the market's shipping agent, an app of its own that the
market's ``ship`` activity calls by Dapr service invocation.

    POST /ship             {order, product, quantity, refuse?} -> the shipment
    GET  /shipments/{id}   the shipment of an order (an operator's method)

Its sidecar's access-control policy (control.py renders it) lets only the
market's app call ``POST /ship``: any other app, and the market calling any
other method, is refused with 403 before the request reaches this code.

Shipping is idempotent by order id: the activity that calls it runs at least
once, and a repeat gets the shipment already made, never a second parcel.
The shipment is kept in the carrier's state store through its own sidecar.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel

from lab_env.runtime import sidecar

app = FastAPI(title="carrier")
# The carrier's own sidecar, with its API token. Calls share the process's keep-alive client
# (sidecar.client): a new one per call costs about 50 ms of CPU (the CA bundle).
SIDECAR = sidecar.Sidecar.from_env()
STORE = "statestore"


class Parcel(BaseModel):
    order: str
    product: str
    quantity: int
    refuse: bool = False  # a drill's planned failure: this parcel cannot be carried


def _key(order: str) -> str:
    return f"shipment-{order}"


def _stored(order: str) -> dict | None:
    reply = sidecar.get(SIDECAR, sidecar.state_path(STORE, _key(order)), timeout=30)
    reply.raise_for_status()
    return reply.json() if reply.status_code == 200 and reply.content else None


@app.get("/healthz")
def healthz() -> Response:
    return Response(status_code=204)


@app.post("/ship")
def ship(parcel: Parcel) -> dict:
    if parcel.refuse:
        raise HTTPException(422, f"the carrier refused order {parcel.order}")
    known = _stored(parcel.order)
    if known is not None:  # a re-run activity: the same shipment, not a second one
        return known
    # The tracking id follows from the order, so two racing first calls store the same shipment.
    shipment = {
        "order": parcel.order,
        "product": parcel.product,
        "quantity": parcel.quantity,
        "tracking": f"trk-{parcel.order}",
        "carrier": os.environ.get("APP_ID", "carrier"),
    }
    sidecar.post(
        SIDECAR, sidecar.state_path(STORE), json=[{"key": _key(parcel.order), "value": shipment}], timeout=30
    ).raise_for_status()
    return shipment


@app.get("/shipments/{order}")
def shipment(order: str) -> dict:
    known = _stored(order)
    if known is None:
        raise HTTPException(404, f"no shipment for order {order}")
    return known
