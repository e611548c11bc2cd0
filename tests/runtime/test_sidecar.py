"""lab_env.runtime.sidecar: Dapr's HTTP API paths, the API token on every call
(against a real HTTP server on 127.0.0.1, not a mock), one client per process.
No stack."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lab_env.runtime import scale, sidecar
from lab_env.runtime.apps import DaprApp

# -- paths, as Dapr's API reference writes them (docs.dapr.io/reference/api) ---------------------


def test_paths_are_the_documented_ones():
    assert sidecar.invoke_path("countService", "sum") == "/v1.0/invoke/countService/method/sum"
    assert sidecar.publish_path("pubsubName", "deathStarStatus") == "/v1.0/publish/pubsubName/deathStarStatus"
    assert sidecar.state_path("starwars") == "/v1.0/state/starwars"
    assert sidecar.state_path("starwars", "planet") == "/v1.0/state/starwars/planet"
    assert sidecar.state_bulk_path("myRedisStore") == "/v1.0/state/myRedisStore/bulk"
    assert sidecar.secret_path("vault", "db-secret") == "/v1.0/secrets/vault/db-secret"
    assert sidecar.METADATA == "/v1.0/metadata"
    assert sidecar.actor_method_path("stormtrooper", "50", "shoot") == "/v1.0/actors/stormtrooper/50/method/shoot"
    assert (
        sidecar.actor_reminder_path("stormtrooper", "50", "checkRebels")
        == "/v1.0/actors/stormtrooper/50/reminders/checkRebels"
    )
    assert sidecar.actor_state_path("stormtrooper", "50") == "/v1.0/actors/stormtrooper/50/state"
    assert sidecar.actor_state_path("stormtrooper", "50", "location") == "/v1.0/actors/stormtrooper/50/state/location"
    assert sidecar.HEALTHZ == "/v1.0/healthz" and sidecar.HEALTHZ_OUTBOUND == "/v1.0/healthz/outbound"
    assert sidecar.health_url("http://127.0.0.1:3500") == "http://127.0.0.1:3500/v1.0/healthz"
    assert sidecar.health_url("http://127.0.0.1:3500", outbound=True) == "http://127.0.0.1:3500/v1.0/healthz/outbound"


def test_a_metrics_path_label_reads_back_as_the_app_and_method_invoked():
    assert sidecar.invoked(sidecar.invoke_path("products-ab12", "Stock")) == ("products-ab12", "Stock")
    assert sidecar.invoked("/v1.0/invoke/a/method/orders/42") == ("a", "orders/42")
    assert sidecar.invoked(sidecar.HEALTHZ) is None
    assert sidecar.invoked(sidecar.actor_method_path("T", "1", "Stock")) is None


def test_ids_the_sdks_send_raw_stay_raw_and_the_rest_is_escaped():
    # Letters, digits, -._~, RFC 3986's sub-delims, ':' and '@' are legal in a path segment: sent
    # byte for byte as Dapr's SDKs send them (an actor's own state calls go through its SDK). With
    # daprd 1.18, a raw and an escaped ':' or '@' reach the same actor; a fresh actor 'p+q' activated
    # when called with a raw '+', and failed ("actor instance is missing") with an escaped one.
    assert (
        sidecar.actor_method_path("Order-3f2a", "o:1@x+y=z!(w)", "Get")
        == "/v1.0/actors/Order-3f2a/o:1@x+y=z!(w)/method/Get"
    )
    # '/', '?', '#', '%' and spaces would change the URL's shape: escaped, in every segment
    # (daprd 1.18 read state keys 'a/b', 'q?x', 'h#x', 'p%41', 'a b' back through these paths).
    assert sidecar.actor_method_path("T", "a/b c?d#e%f", "M") == "/v1.0/actors/T/a%2Fb%20c%3Fd%23e%25f/method/M"
    assert sidecar.state_path("s", "user/1") == "/v1.0/state/s/user%2F1"
    assert sidecar.invoke_path("app?x", "m") == "/v1.0/invoke/app%3Fx/method/m"
    # An invoked method is a route of the app: its slashes stay, a leading one is dropped.
    assert sidecar.invoke_path("carrier", "/shipments/o-1") == "/v1.0/invoke/carrier/method/shipments/o-1"
    assert sidecar.publish_path("mqtt", "home/kitchen") == "/v1.0/publish/mqtt/home/kitchen"


# -- the token, seen by a real server -----------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as daprd; every answer has a Content-Length
    seen: list[tuple[str, str, dict[str, str]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        headers["x-test-client-port"] = str(self.client_address[1])  # which connection carried it
        self.seen.append((self.command, self.path, headers))
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, list[tuple[str, str, dict[str, str]]]]]:
    """A sidecar stand-in on 127.0.0.1: (port, every request's method, path and headers)."""
    handler = type("Recorder", (_Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler.seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _app(port: int, tmp_path: Path, token: str | None) -> DaprApp:
    env = {"DAPR_API_TOKEN": token} if token else {}
    return DaprApp("t-sidecar", port, 0, None, tmp_path, sidecar_env=env)


def test_an_app_with_a_token_sends_it_on_every_verb(server, tmp_path):
    port, seen = server
    app = _app(port, tmp_path, "s3cret")
    path = sidecar.actor_method_path("T", "a/1", "M")
    sidecar.get(app, sidecar.METADATA, timeout=5)
    sidecar.post(app, sidecar.publish_path("pubsub", "t"), json={"x": 1}, headers={"X-Extra": "1"}, timeout=5)
    sidecar.put(app, path, timeout=5)
    sidecar.delete(app, sidecar.state_path("s", "k"), timeout=5)
    assert [(method, p) for method, p, _ in seen] == [
        ("GET", "/v1.0/metadata"),
        ("POST", "/v1.0/publish/pubsub/t"),
        ("PUT", "/v1.0/actors/T/a%2F1/method/M"),
        ("DELETE", "/v1.0/state/s/k"),
    ]
    assert [headers.get("dapr-api-token") for _, _, headers in seen] == ["s3cret"] * 4
    assert seen[1][2]["x-extra"] == "1"  # headers a caller adds go along with the token


def test_an_app_without_a_token_sends_none(server, tmp_path):
    port, seen = server
    sidecar.get(_app(port, tmp_path, None), sidecar.METADATA, timeout=5)
    sidecar.get(f"http://127.0.0.1:{port}", sidecar.METADATA, timeout=5)  # a bare sidecar URL
    assert len(seen) == 2 and all("dapr-api-token" not in headers for _, _, headers in seen)


def test_a_sidecar_target_sends_its_own_token_and_from_env_reads_the_apps(server, monkeypatch):
    port, seen = server
    sidecar.get(sidecar.Sidecar(f"http://127.0.0.1:{port}", "guess"), sidecar.METADATA, timeout=5)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(port))
    monkeypatch.setenv("DAPR_API_TOKEN", "from-env")
    sidecar.get(sidecar.Sidecar.from_env(), sidecar.METADATA, timeout=5)
    assert [headers.get("dapr-api-token") for _, _, headers in seen] == ["guess", "from-env"]


def test_the_scale_driver_sends_a_hosts_token_on_its_raw_connections(server, tmp_path):
    port, seen = server
    latencies: list[float] = []
    calls, calls_once = iter(scale.actor_calls("T", range(3), "M")), scale.actor_calls("T", range(1), "M")
    made = asyncio.run(scale.drive(scale._targets([_app(port, tmp_path, "s3cret")]), calls, 1, latencies))
    assert made == 3 and len(latencies) == 3
    assert [p for _, p, _ in seen] == [f"/v1.0/actors/T/agent-{i}/method/M" for i in range(3)]
    assert [headers.get("dapr-api-token") for _, _, headers in seen] == ["s3cret"] * 3
    seen.clear()
    asyncio.run(scale.drive(scale._targets([_app(port, tmp_path, None)]), iter(calls_once), 1, []))
    assert len(seen) == 1 and "dapr-api-token" not in seen[0][2]


# -- one client per process ---------------------------------------------------------------------


def test_one_client_per_process_reused_across_calls_and_threads():
    first = sidecar.client()
    assert sidecar.client() is first
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(sidecar.client())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is first for c in found)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_client_of_its_own():
    parent = sidecar.client()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            mine = sidecar.client()
            verdict = f"{mine is not parent} {sidecar.client() is mine}"
        except BaseException as err:  # noqa: BLE001  (reported to the parent)
            verdict = repr(err)
        os.write(write, verdict.encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == "True True", answer  # a new client in the child, then reused there
    assert sidecar.client() is parent  # and the parent keeps its own


def test_a_learners_app_gets_a_fresh_connection_per_request_and_a_sidecar_a_pooled_one(server):
    port, seen = server
    url = f"http://127.0.0.1:{port}/events"
    for keep_alive in (True, True, False, False):
        sidecar.client(keep_alive=keep_alive).get(url).raise_for_status()
    ports = [headers["x-test-client-port"] for _, _, headers in seen]
    assert ports[0] == ports[1], "the sidecar client reuses its connection"
    assert len({ports[2], ports[3]} - {ports[0]}) == 2, "each request to an app opens a connection of its own"


def test_an_event_loops_async_client_sends_the_token_and_keeps_one_connection(server, tmp_path):
    port, seen = server
    app = _app(port, tmp_path, "s3cret")

    async def three_calls() -> object:
        for _ in range(3):
            reply = await sidecar.arequest("POST", app, sidecar.publish_path("pubsub", "t"), json={"x": 1}, timeout=5)
            reply.raise_for_status()
        return sidecar.async_client()

    first, second = asyncio.run(three_calls()), asyncio.run(three_calls())
    assert first is not second  # a client belongs to the loop it ran on: a new loop gets its own
    assert len(sidecar._async_clients) == 1, "a closed loop's client is dropped when the next loop makes one"
    assert [headers.get("dapr-api-token") for _, _, headers in seen] == ["s3cret"] * 6
    ports = [headers["x-test-client-port"] for _, _, headers in seen]
    assert len(set(ports[:3])) == 1 and len(set(ports[3:])) == 1  # kept alive within a loop
