"""The trial desk: how a sandboxed kernel reaches the candidate hosts a check runs on the grading machine.

Lab 07's validation-suite check starts each candidate as an actor host in the worker (trial.hosted)
and hands its app id to the learner's ``problems(host)``, which runs in the graded kernel. A kernel
in a sandbox can neither read the worker's app records nor signal its processes, and must not: the
candidate's source stays out of its reach. So the worker serves, on 127.0.0.1, the two things a
suite may do to a candidate (``trial.call`` and ``trial.restart``) for the hosts it started and no
others, behind a token only that kernel's environment holds. trial.py sends both here when the
kernel's environment names a desk (TRIAL_DESK_ENV).
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab_env.errors import LabEnvError
from lab_env.models import trial
from lab_env.runtime.actors import ActorCallFailed

MAX_CONNECTIONS = 8  # a suite needs one; the port is on the shared loopback, the token checked after a read


class _BoundedServer(ThreadingHTTPServer):
    """Refuses a connection beyond MAX_CONNECTIONS at once (closed unanswered), so no client holds
    the worker's threads or memory without bound, token or not."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class TrialDesk:
    """A small HTTP server in the worker; ``env()`` is what the sandboxed kernel needs to use it."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self._server = _BoundedServer(("127.0.0.1", 0), _handler(self.token))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="trial-desk", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def env(self) -> dict[str, str]:
        return {trial.TRIAL_DESK_ENV: self.url, trial.TRIAL_TOKEN_ENV: self.token}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


MAX_REQUEST = 64 * 1024  # a call's body is a few fields; more is not a suite's
_one_at_a_time = threading.Lock()  # a suite probes one step at a time; N restarts at once are not a probe


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """What the desk does with one request: the call's answer, or the error the kernel raises again."""
    host = request.get("host")
    with _one_at_a_time, trial.while_served(str(host)) as served:
        if not served:
            return {"error": "LabEnvError", "message": f"no candidate host {host!r} is running for this check"}
        try:
            if request.get("what") == "restart":
                trial.restart(str(host))
                return {"answer": None}
            if request.get("what") == "call":
                actor_id, method = request.get("actor_id"), request.get("method")
                if not isinstance(actor_id, str) or not isinstance(method, str):
                    return {"error": "LabEnvError", "message": "trial.call takes the actor id and method as strings"}
                actor = str(request.get("actor", trial.ACTOR))
                return {"answer": trial.call(str(host), actor_id, method, request.get("body"), actor=actor)}
            return {"error": "LabEnvError", "message": f"the desk does not do {request.get('what')!r}"}
        except ActorCallFailed as err:  # the candidate's own failure: the suite may expect it
            return {"error": "ActorCallFailed", "message": str(err), "status": err.status, "answer": err.answer}
        except LabEnvError as err:
            return {"error": "LabEnvError", "message": str(err)}
        except Exception as err:  # the sidecar unreachable, say: the kernel gets it by name, not a dropped line
            return {"error": type(err).__name__, "message": str(err)[:500]}


def _handler(token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # seconds a client may wait between two reads of its request

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), token.encode()):
                self._send(403, {"error": "LabEnvError", "message": "the trial desk refused the token"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 <= length <= MAX_REQUEST:
                    raise ValueError(length)
                request = json.loads(self.rfile.read(length) or b"{}")
            except (ValueError, RecursionError):
                self._send(400, {"error": "LabEnvError", "message": "the trial desk takes one small JSON object"})
                return
            self._send(200, answer(request if isinstance(request, dict) else {}))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            pass  # the worker's log has the check's outcome; a line per probe would drown it

    return Handler
