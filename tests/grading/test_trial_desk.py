"""The trial desk's own rules, with no candidate running (pure: no stack). The desk serving a live
candidate to another process is tests/labs/lab07_capstone/test_validation_suite.py's."""

from __future__ import annotations

import socket

import httpx

from lab_env.core.probes import wait_until
from lab_env.grading.trial_desk import MAX_CONNECTIONS, TrialDesk


def _post(desk: TrialDesk, body: object, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {desk.token if token is None else token}"}
    return httpx.post(desk.url, json=body, headers=headers, timeout=30)


def test_only_the_token_and_only_a_host_being_served():
    desk = TrialDesk()
    try:
        assert _post(desk, {"what": "restart", "host": "x"}, token="guess").status_code == 403
        answer = _post(desk, {"what": "call", "host": "candidate-1f2e3d", "actor_id": "lamp", "method": "Stock"})
        assert answer.json() == {
            "error": "LabEnvError",
            "message": "no candidate host 'candidate-1f2e3d' is running for this check",
        }
        too_big = httpx.post(
            desk.url, content=b"{" + b" " * 70_000 + b"}", headers={"Authorization": f"Bearer {desk.token}"}
        )
        assert too_big.status_code == 400
    finally:
        desk.close()


def test_connections_beyond_the_bound_are_closed_unanswered_and_the_desk_still_answers():
    desk = TrialDesk()
    port = int(desk.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
    try:
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(60)  # a safety net: the desk closes it at once
        try:
            extra.sendall(b"POST / HTTP/1.1\r\nHost: desk\r\nContent-Length: 2\r\n\r\n{}")
            assert extra.recv(64) == b"", "a connection beyond the bound was answered"
        except ConnectionResetError:
            pass  # closed unanswered, with our request unread
        finally:
            extra.close()
    finally:
        for s in idle:
            s.close()

    def answers() -> bool:  # the idle ones' threads end as their sockets close
        try:
            return _post(desk, {"what": "restart", "host": "nobody"}, token="guess").status_code == 403
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, 60, "the desk answering again once its idle connections closed")
    finally:
        desk.close()
