"""An app that hosts the reference ProductActor (and nothing else).

    uvicorn lab_env.marketplace.agents.product_host:app --port ...   (started by lab_env.runtime.scale.start_hosts)

Run several of these with the same LAB_RUN_TOKEN and placement spreads the
products over them. GET /noop does nothing: called through the sidecar it
measures the sidecar hop itself (bench/actors_bench.py).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from datetime import timedelta

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from lab_env.marketplace.agents.market_actors import ProductActor
from lab_env.runtime.actors import for_this_run, reuse_sidecar_connections, tune_gc_for_actors

# Idle actors stay active this long; a scale run must not lose them mid-way.
ActorRuntime.set_actor_config(
    ActorRuntimeConfig(actor_idle_timeout=timedelta(seconds=float(os.environ.get("IDLE_SECONDS", "1800"))))
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One keep-alive session to the sidecar instead of a connection per state
    # call (LAB_REUSE_SIDECAR_CONNECTIONS=0 measures the SDK as shipped).
    if os.environ.get("LAB_REUSE_SIDECAR_CONNECTIONS", "1") != "0":
        reuse_sidecar_connections()
    # Fewer full garbage collections over 100,000 live actors (LAB_TUNE_GC=0 measures the defaults).
    if os.environ.get("LAB_TUNE_GC", "1") != "0":
        tune_gc_for_actors()
    await actors.register_actor(for_this_run(ProductActor))
    yield


app = FastAPI(title="product host", lifespan=lifespan)
actors = DaprActor(app)


@app.get("/noop")
async def noop() -> None:
    return None
