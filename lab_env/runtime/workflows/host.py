"""The ASGI app that hosts one lab module's workflows (and its actors) next to a sidecar.

A lab writes a module that creates ``wfr = wf.WorkflowRuntime()`` and
registers workflows and activities with ``@wfr.workflow`` / ``@wfr.activity``;
it may list actor classes in ``ACTORS``. A module with ACTORS and no
``wfr`` is an actor host only (lab 06's agents). ``lab_env.runtime.workflows.start_workflow_app``
runs this host with the module's name in LAB_WORKFLOW_MODULE:

* the actors are registered with Dapr under per-run type names;
* the workflow worker starts in a background thread, because its stream to
  the sidecar is only ready once the sidecar has reached this app, which
  listens only after this lifespan has returned;
* GET /workflows/ready answers 204 once the worker is connected, 503 before,
  and 500 with the reason if it could not start.

One module per app: two WorkflowRuntimes on one sidecar would each receive
work items for the other's workflows.
"""

from __future__ import annotations

import importlib
import os
import threading
from contextlib import asynccontextmanager

from dapr.ext.fastapi import DaprActor
from dapr.ext.workflow import WorkflowRuntime
from fastapi import FastAPI, Response

from lab_env.runtime.actors import for_this_run, reuse_sidecar_connections, tune_gc_for_actors

_worker: dict[str, object] = {"state": "starting"}


def _start_worker(runtime: WorkflowRuntime) -> None:
    try:
        runtime.start()
        _worker["state"] = "ready"
    except Exception as err:  # reported by /workflows/ready
        _worker["state"] = "failed"
        _worker["error"] = f"{type(err).__name__}: {err}"


@asynccontextmanager
async def lifespan(app: FastAPI):
    reuse_sidecar_connections()  # the actors' state calls share one keep-alive session
    # Fewer full collections over many live actors: off unless asked (LAB_TUNE_GC=1); bench/market_levers.py
    # measured no gain for the market at 300 orders.
    if os.environ.get("LAB_TUNE_GC") == "1":
        tune_gc_for_actors()
    module = importlib.import_module(os.environ["LAB_WORKFLOW_MODULE"])
    for cls in getattr(module, "ACTORS", []):
        await actors.register_actor(for_this_run(cls))
    runtime = getattr(module, "wfr", None)
    if runtime is None and getattr(module, "ACTORS", None):
        _worker["state"] = "ready"  # actors only: nothing more to start
    elif not isinstance(runtime, WorkflowRuntime):
        _worker.update(state="failed", error=f"{module.__name__} defines no `wfr = wf.WorkflowRuntime()`")
    else:
        threading.Thread(target=_start_worker, args=(runtime,), daemon=True, name="workflow-worker").start()
    yield
    if isinstance(runtime, WorkflowRuntime) and _worker["state"] == "ready":
        runtime.shutdown()


app = FastAPI(title="lab workflows", lifespan=lifespan)
actors = DaprActor(app)


@app.get("/workflows/ready")
def workflows_ready() -> Response:
    state = _worker["state"]
    if state == "ready":
        return Response(status_code=204)
    if state == "failed":
        return Response(str(_worker.get("error", "")), status_code=500)
    return Response(status_code=503)
