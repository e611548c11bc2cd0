"""The one HTTP client for a daprd sidecar: the paths of Dapr's HTTP API, one
keep-alive connection pool per process, and requests that always carry the
sidecar's API token when it requires one.

    from lab_env.runtime import sidecar

    sidecar.post(app, sidecar.publish_path("pubsub", "orders"), json=order, timeout=10)
    sidecar.get(sidecar.Sidecar.from_env(), sidecar.state_path("statestore", key))  # inside an app

Only this module spells ``/v1.0/``. A call's target is a ``DaprApp`` (its
sidecar URL and its DAPR_API_TOKEN), a ``Sidecar`` (a URL and a token, for
an app's own sidecar or a deliberately wrong token) or a bare sidecar URL
(no token). Calls that are not to a sidecar (an app's own routes) may use
``client()`` for its keep-alive pool.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote

if TYPE_CHECKING:  # httpx takes ~165 ms to import: only a process that calls pays it
    import httpx

    from lab_env.runtime.apps import DaprApp

API = "/v1.0"
TOKEN_HEADER = "dapr-api-token"
HEALTHZ = f"{API}/healthz"  # 204 once the sidecar has loaded its components and reached its app
HEALTHZ_OUTBOUND = f"{API}/healthz/outbound"  # 204 once its components are ready (the app not needed)
METADATA = f"{API}/metadata"
DEFAULT_TIMEOUT_S = 30.0

# -- paths ------------------------------------------------------------------------------------

# RFC 3986 lets these stand unescaped in a path segment. Dapr's SDKs send ids raw, and an actor's
# own state calls go through its SDK, so an id made of them is sent byte for byte as the SDK sends
# it. That includes "+", which daprd 1.18 reads as a space in a state key (as it does from the SDKs).
# Anything else ("/", "?", "#", "%", space) would change the URL's shape: escaped.
_SEGMENT_SAFE = "!$&'()*+,;=:@"
_PLAIN = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]*").fullmatch


def _segment(value: str, keep_slashes: bool = False) -> str:
    # The regex first: quote() costs ~1 µs a call, and scale.py builds 100,000 paths at once.
    if _PLAIN(value):
        return value
    return quote(value, safe=_SEGMENT_SAFE + ("/" if keep_slashes else ""))


def invoke_path(app_id: str, method: str) -> str:
    """Service invocation: ``method`` may be a route with slashes (``/shipments/o-1``)."""
    return f"{API}/invoke/{_segment(app_id)}/method/{_segment(method.lstrip('/'), keep_slashes=True)}"


def publish_path(pubsub: str, topic: str) -> str:
    """Publish an event (metadata such as ``metadata.partitionKey`` goes in ``params``)."""
    return f"{API}/publish/{_segment(pubsub)}/{_segment(topic, keep_slashes=True)}"


def state_path(store: str, key: str | None = None) -> str:
    """Save (POST, a list of items) to the store, or get or delete one ``key``."""
    base = f"{API}/state/{_segment(store)}"
    return base if key is None else f"{base}/{_segment(key)}"


def state_bulk_path(store: str) -> str:
    """Get many keys at once (POST {"keys": [...]})."""
    return f"{API}/state/{_segment(store)}/bulk"


def secret_path(store: str, name: str) -> str:
    return f"{API}/secrets/{_segment(store)}/{_segment(name)}"


def actor_path(actor_type: str, actor_id: str) -> str:
    return f"{API}/actors/{_segment(actor_type)}/{_segment(actor_id)}"


def actor_method_path(actor_type: str, actor_id: str, method: str) -> str:
    return f"{actor_path(actor_type, actor_id)}/method/{_segment(method)}"


def actor_reminder_path(actor_type: str, actor_id: str, name: str) -> str:
    return f"{actor_path(actor_type, actor_id)}/reminders/{_segment(name)}"


def actor_state_path(actor_type: str, actor_id: str, key: str | None = None) -> str:
    """The actor's state transaction (POST), or one ``key`` of its state (GET)."""
    base = f"{actor_path(actor_type, actor_id)}/state"
    return base if key is None else f"{base}/{_segment(key)}"


def workflow_start_path(workflow: str, instance_id: str) -> str:
    """Start (POST, the input as body) the workflow named ``workflow`` as instance ``instance_id``."""
    return f"{API}/workflows/dapr/{_segment(workflow)}/start?instanceID={_segment(instance_id)}"


def workflow_path(instance_id: str) -> str:
    """An instance's status (GET): runtimeStatus, and its output under properties."""
    return f"{API}/workflows/dapr/{_segment(instance_id)}"


def health_url(sidecar_url: str, outbound: bool = False) -> str:
    """The full URL of a sidecar's health check, for core.probes.http_status."""
    return f"{sidecar_url}{HEALTHZ_OUTBOUND if outbound else HEALTHZ}"


# -- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sidecar:
    """A sidecar's HTTP API: its base URL and the token it requires (None: none)."""

    url: str
    token: str | None = None

    @classmethod
    def from_env(cls) -> Sidecar:
        """The sidecar of the app this process is (the variables dapr_app and daprd give an app)."""
        port = os.environ.get("DAPR_HTTP_PORT", "3500")
        return cls(f"http://127.0.0.1:{port}", os.environ.get("DAPR_API_TOKEN") or None)


Target: TypeAlias = "DaprApp | Sidecar | str"  # a DaprApp, a Sidecar, or a bare sidecar URL (no token)


def resolve(target: Target) -> Sidecar:
    """A DaprApp's sidecar comes with the app's token: a caller cannot forget it."""
    if isinstance(target, Sidecar):
        return target
    if isinstance(target, str):
        return Sidecar(target)
    return Sidecar(target.sidecar_url, target.api_token)


def headers(target: Target) -> dict[str, str]:
    """What every call to this sidecar's API sends: the token, when it has one."""
    token = resolve(target).token
    return {TOKEN_HEADER: token} if token else {}


def url(target: Target, path: str) -> str:
    return resolve(target).url + path


# -- the client -------------------------------------------------------------------------------

_clients: dict[bool, tuple[int, httpx.Client]] = {}  # keep_alive -> (the pid that made it, the client)
_lock = threading.Lock()


def client(keep_alive: bool = True) -> httpx.Client:
    """This process's client, made on first use and then reused.

    httpx.Client() costs about 50 ms of CPU (it loads the CA bundle), so never
    one per call. It is thread-safe. A forked child gets a client of its own:
    the parent's pooled sockets are shared with the parent after fork.

    ``keep_alive=False``: a fresh connection per request, for a learner's app,
    which checks stop and start again (often on the same port): a pooled
    connection to a process that is gone fails with "Connection reset by peer"
    (seen once in a full suite, on a lab 02 check).
    """
    made = _clients.get(keep_alive)
    if made is not None and made[0] == os.getpid():
        return made[1]
    import httpx

    with _lock:
        made = _clients.get(keep_alive)
        if made is None or made[0] != os.getpid():
            # Up to 64 idle connections to sidecars: density's and the market's threads call at once.
            # An idle one is dropped after 2 s, before a uvicorn app's 5 s keep-alive timeout closes it.
            pooled = 64 if keep_alive else 0
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=pooled, keepalive_expiry=2.0)
            made = _clients[keep_alive] = (os.getpid(), httpx.Client(timeout=DEFAULT_TIMEOUT_S, limits=limits))
        return made[1]


_async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def async_client() -> httpx.AsyncClient:
    """The running event loop's client, made on first use there and then reused (an async client belongs
    to the loop it first ran on). For an async app's calls that must not block its loop: a workflow
    worker's activities publish events and invoke apps while its other activities wait."""
    import httpx

    loop = asyncio.get_running_loop()
    for closed in [other for other in list(_async_clients) if other.is_closed()]:  # a client keeps its loop alive
        del _async_clients[closed]
    made = _async_clients.get(loop)
    if made is None or made.is_closed:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=64, keepalive_expiry=2.0)
        made = _async_clients[loop] = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_S, limits=limits)
    return made


def _reset_lock_in_child() -> None:
    # A fork while another thread held the lock would leave the child's copy locked forever.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


def request(
    method: str, target: Target, path: str, *, timeout: float = DEFAULT_TIMEOUT_S, **kwargs: Any
) -> httpx.Response:
    """One call to the sidecar's API (``path`` from the builders above), with its token.

    ``kwargs`` go to httpx (json, content, params, headers); the token is added
    to any headers given. Errors are httpx's own; the status is not checked.
    """
    sent = {**(kwargs.pop("headers", None) or {}), **headers(target)}
    return client().request(method, url(target, path), headers=sent, timeout=timeout, **kwargs)


def get(target: Target, path: str, **kwargs: Any) -> httpx.Response:
    return request("GET", target, path, **kwargs)


def post(target: Target, path: str, **kwargs: Any) -> httpx.Response:
    return request("POST", target, path, **kwargs)


def put(target: Target, path: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", target, path, **kwargs)


def delete(target: Target, path: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", target, path, **kwargs)


async def arequest(
    method: str, target: Target, path: str, *, timeout: float = DEFAULT_TIMEOUT_S, **kwargs: Any
) -> httpx.Response:
    """request(), awaited on the running loop's client (async_client)."""
    sent = {**(kwargs.pop("headers", None) or {}), **headers(target)}
    return await async_client().request(method, url(target, path), headers=sent, timeout=timeout, **kwargs)


def invoked(path: str) -> tuple[str, str] | None:
    """(app id, method) of a service-invocation path as a sidecar's metrics label it, else None."""
    found = re.fullmatch(rf"{re.escape(API)}/invoke/([^/]+)/method/(.+)", path)
    return (found[1], found[2]) if found else None
