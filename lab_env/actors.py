"""Small helpers for actor apps written in the labs.

`for_this_run(cls)` registers an actor class under a per-run type name, so
two runs of a lab (two graders, say) never share actors through placement.
`lifecycle_log` records activations and deactivations and serves them at
GET /lifecycle, so a notebook can watch them happen.
"""

from __future__ import annotations

import time
from typing import TypeVar

from dapr.actor import Actor, Remindable
from fastapi import APIRouter

from .apps import DaprApp, run_token, unique_name

A = TypeVar("A", bound=type[Actor])


def actor_type(name: str) -> str:
    """The per-run actor type name for a class called ``name``."""
    return unique_name(name)


def actor_type_in(app: DaprApp, name: str) -> str:
    """The actor type name for a class called ``name`` as ``app`` registered it
    (from another process too, such as the grader)."""
    return f"{name}-{app.env.get('LAB_RUN_TOKEN') or run_token()}"


def for_this_run(cls: A) -> A:
    """A subclass of ``cls`` whose Dapr actor type is ``actor_type(cls.__name__)``."""
    # The SDK names an actor type after its class and recognises Remindable
    # only among the direct bases, hence the explicit second base.
    bases = (cls, Remindable) if issubclass(cls, Remindable) else (cls,)
    return type(actor_type(cls.__name__), bases, {"__module__": cls.__module__})  # type: ignore[return-value]


class LifecycleLog:
    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.router = APIRouter()
        self.router.add_api_route("/lifecycle", self.list_events, methods=["GET"])

    def record(self, event: str, actor: Actor) -> None:
        self.events.append({"event": event, "actor_id": actor.id.id, "at": time.time()})

    def list_events(self) -> list[dict[str, object]]:
        return self.events


lifecycle_log = LifecycleLog()


def invoke(app: DaprApp, actor_type_name: str, actor_id: str, method: str, data: object = None,
           timeout: float = 30.0) -> object:
    """Call an actor method through ``app``'s sidecar (Dapr actor HTTP API), synchronously.

    Raises RuntimeError with the sidecar's answer when the call fails, for
    example when the method raised in the app.
    """
    import httpx

    url = f"{app.sidecar_url}/v1.0/actors/{actor_type_name}/{actor_id}/method/{method}"
    resp = httpx.put(url, json=data, timeout=timeout)
    if resp.status_code >= 400:
        raise RuntimeError(f"{actor_type_name}.{method} failed ({resp.status_code}): {resp.text[:300]}")
    return resp.json() if resp.content else None
