"""Direct calls between agents by Dapr service invocation (lab 06's peers).

    reply = call(caller, "seller-1a2b3c", "quote", {"task": "t1"})

goes from the caller's sidecar to the sidecar of the app with that id, then
to its app, with whatever Resiliency policy the caller's sidecar loaded
for that target: timeouts, retries, a circuit breaker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp

BREAKER_OPEN = "circuit breaker is open"


@dataclass(frozen=True)
class Reply:
    status: int
    ms: float
    body: object  # the JSON answer, or the sidecar's error message

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def breaker_open(self) -> bool:
        """The caller's sidecar refused at once: its circuit breaker for the peer is open."""
        return not self.ok and BREAKER_OPEN in str(self.body)

    def outcome(self) -> str:
        return "ok" if self.ok else "breaker open" if self.breaker_open else "failed"


def call(caller: DaprApp, peer: str, method: str, body: object = None, timeout: float = 60.0) -> Reply:
    started = time.perf_counter()
    # The process's one keep-alive client (sidecar.client): a new one per call costs tens of ms,
    # which would hide the difference between a call and a refusal.
    response = sidecar.post(caller, sidecar.invoke_path(peer, method), json=body, timeout=timeout)
    ms = (time.perf_counter() - started) * 1000
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    if not response.is_success and isinstance(answer, dict):
        answer = answer.get("message", answer)
    return Reply(response.status_code, ms, answer)


def publish(app: DaprApp, topic: str, data: object, pubsub: str = "pubsub") -> float:
    """Publish ``data`` on ``topic`` through ``app``'s sidecar; the ms it took to be accepted."""
    started = time.perf_counter()
    sidecar.post(app, sidecar.publish_path(pubsub, topic), json=data, timeout=30).raise_for_status()
    return (time.perf_counter() - started) * 1000
