"""Small helpers for actor apps written in the labs.

`for_this_run(cls)` registers an actor class under a per-run type name, so
two runs of a lab (two graders, say) never share actors through placement.
`lifecycle_log` records activations and deactivations and serves them at
GET /lifecycle, so a notebook can watch them happen.
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

from dapr.actor import Actor, Remindable
from fastapi import APIRouter

from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp, run_token, unique_name

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


def activations(app: DaprApp, prefix: str = "") -> dict[str, float]:
    """When ``app`` last activated each actor id starting with ``prefix`` (its /lifecycle log, a Unix time).
    An app that does not answer (it crashed) has activated none."""
    import httpx

    try:
        events = sidecar.client().get(f"{app.app_url}/lifecycle", timeout=30).json()
    except (httpx.HTTPError, ValueError):
        return {}
    if not isinstance(events, list):
        return {}  # no /lifecycle route: an app that keeps no log
    return {
        str(e["actor_id"]): float(e["at"])
        for e in events
        if e.get("event") == "activated" and str(e.get("actor_id", "")).startswith(prefix)
    }


def where_activated(hosts: list[DaprApp], prefix: str = "") -> dict[str, str]:
    """Actor id -> the app id of the host that activated it last: where placement put it most recently."""
    latest: dict[str, tuple[float, str]] = {}
    for host in hosts:
        for actor_id, at in activations(host, prefix).items():
            if actor_id not in latest or at > latest[actor_id][0]:
                latest[actor_id] = (at, host.app_id)
    return {actor_id: app_id for actor_id, (_, app_id) in sorted(latest.items())}


def placement_table(run_only: bool = True) -> list[dict[str, Any]]:
    """The actor hosts placement knows now, as placement serves its table: each host's app id, the address
    of its sidecar's internal gRPC port and the actor types it hosts. ``run_only``: hosts of this run only."""
    import httpx

    from lab_env.core.profile import current

    try:
        tables = sidecar.client().get(current().placement_table_url, timeout=30).json().get("tables", {})
    except (httpx.HTTPError, ValueError) as err:
        raise LabEnvError(
            f"placement's table is not reachable: {err}", "run `lab-env up` (or `lab-env doctor`)"
        ) from None
    rows = [
        {"app_id": host["id"], "address": host["name"], "actor_types": sorted(host.get("entities") or [])}
        for table in tables.values()
        for host in table.get("hosts") or []
    ]
    if run_only:
        rows = [row for row in rows if row["app_id"].endswith(f"-{run_token()}")]
    return sorted(rows, key=lambda row: row["app_id"])


class ActorCallFailed(LabEnvError):
    """An actor method failed; ``str()`` is one line ending with the app's own error."""

    def __init__(self, actor_type_name: str, actor_id: str, method: str, status: int, answer: str) -> None:
        self.status, self.answer = status, answer
        super().__init__(
            f"{actor_type_name.rsplit('-', 1)[0]} {actor_id!r}.{method} failed ({status}): {innermost_error(answer)}"
        )


def innermost_error(answer: str) -> str:
    """The app's own error inside the sidecar's answer, which wraps it once per hop
    (an actor calling an actor nests it again, escaped each time)."""
    text = answer
    for _ in range(6):
        try:  # raw_decode: the sidecar appends "(Error Code: ...)" after a nested answer
            message = json.JSONDecoder().raw_decode(text)[0].get("message")
        except (ValueError, AttributeError):
            break
        if not isinstance(message, str):
            break
        text = message
        nested = text.find("{")
        if nested < 0 or not _starts_json(text[nested:]):
            break  # the app's own message (which may contain braces of its own)
        text = text[nested:]
    return text[:300]


def _starts_json(text: str) -> bool:
    try:
        json.JSONDecoder().raw_decode(text)
    except ValueError:
        return False
    return True


def invoke(
    app: DaprApp, actor_type_name: str, actor_id: str, method: str, data: object = None, timeout: float = 30.0
) -> Any:  # the method's JSON answer: its shape is the actor's contract
    """Call an actor method through ``app``'s sidecar (Dapr actor HTTP API), synchronously.

    Raises ActorCallFailed (a RuntimeError) with the app's own error when the
    call fails, for example when the method raised in the app.
    """
    path = sidecar.actor_method_path(actor_type_name, actor_id, method)
    resp = sidecar.put(app, path, json=data, timeout=timeout)
    if resp.status_code >= 400:
        raise ActorCallFailed(actor_type_name, actor_id, method, resp.status_code, resp.text)
    return resp.json() if resp.content else None


# Python's cyclic GC defaults (700, 10, 10) make a full collection every
# ~7,000 net allocations times 100. An actor host keeps every active actor
# (about five tracked objects each) alive, so each full collection walks them
# all: at 100,000 actors, 100 full collections took 17 s of a 66 s activation
# run, up to 320 ms each, and set the p99 (bench/actors_bench.py, "gc" row).
ACTOR_HOST_GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc_for_actors(thresholds: tuple[int, int, int] = ACTOR_HOST_GC_THRESHOLDS) -> None:
    """Fewer, cheaper garbage collections in an app that hosts many actors.

    Freezes what exists now (modules, classes: they live as long as the
    process, so full collections need not walk them) and raises the
    collection thresholds. Cycles are still collected, only less often; at
    100,000 actors the run above had one full collection, of 151 ms. Call it
    in an actor app's lifespan, next to reuse_sidecar_connections()."""
    import gc

    gc.freeze()
    gc.set_threshold(*thresholds)


def reuse_sidecar_connections() -> None:
    """Keep the Dapr SDK's HTTP connections to the sidecar open.

    In SDK 1.18 every actor state read or write, timer and reminder call
    opens a new aiohttp session: a new TCP connection and a resolver thread
    per call. Profiled under load (bench/actors_bench.py) that is most of an
    actor host's CPU beyond FastAPI itself. After this call the SDK's client
    shares one keep-alive session per event loop instead; requests, headers,
    retries and errors stay the SDK's own. Call it once in an actor app,
    when it starts serving (in its lifespan), not at import: a notebook that
    imports the app's module keeps the SDK as it is. Safe to call twice.
    """
    import asyncio

    import aiohttp
    from dapr.clients.http import client as sdk_http

    if getattr(sdk_http.DaprHttpClient.send_bytes, "reuses_connections", False):
        return
    sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def session() -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        found = sessions.get(loop)
        if found is None or found.closed:
            found = sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, force_close=False)
            )
        return found

    async def send_bytes(self, method, url, data, headers=None, query_params=None, timeout=None):
        sent = dict(headers or {})
        sent.setdefault(sdk_http.CONTENT_TYPE_HEADER, sdk_http.DEFAULT_JSON_CONTENT_TYPE)
        if sdk_http.settings.DAPR_API_TOKEN is not None:
            sent[sdk_http.DAPR_API_TOKEN_HEADER] = sdk_http.settings.DAPR_API_TOKEN
        if self._headers_callback is not None:
            sent.update(self._headers_callback())
        sent[sdk_http.USER_AGENT_HEADER] = sdk_http.DAPR_USER_AGENT
        request = {
            "method": method,
            "url": url,
            "data": data,
            "headers": sent,
            "sslcontext": self.get_ssl_context(),
            "params": query_params,
            "timeout": aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout,
        }
        try:
            response = await self.retry_policy.make_http_call(session(), request)
        except aiohttp.ServerDisconnectedError:
            # A kept connection the sidecar closed (it restarted): once more on a fresh one.
            response = await self.retry_policy.make_http_call(session(), request)
        if 200 <= response.status < 300:
            return await response.read(), response
        raise await self.convert_to_error(response)

    send_bytes.reuses_connections = True  # type: ignore[attr-defined]
    sdk_http.DaprHttpClient.send_bytes = send_bytes  # type: ignore[method-assign]  # the patch is the point
