"""A plain agent app: no actors, no state. Lab 05's homes run buyers and
sellers on it (lab 06 gives them behaviour); every method answers with who
was called, so access-control drills and health probes have something real.

    uvicorn lab_env.marketplace.agents.plain_agent:app --port ...

An app that hosts actors needs the actor state store in its sidecar's
components: run ProductActor only where the spec gives the agent the store.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Response

app = FastAPI(title="plain agent")


@app.get("/healthz")
def healthz() -> Response:
    return Response(status_code=204)


@app.api_route("/{method}", methods=["GET", "POST", "PUT"])
def call(method: str) -> dict:
    return {"agent": os.environ.get("APP_ID", "?"), "method": method}
