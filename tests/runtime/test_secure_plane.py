"""The private mTLS control plane the market runs on: placement and scheduler
certified by its own sentry, refusing plain text, and gone after stop_plane."""

from __future__ import annotations

import json
import socket

import pytest

from lab_env import unique_name
from lab_env.core import procs
from lab_env.runtime import secure_plane
from lab_env.runtime.apps import apps_dir
from lab_env.runtime.sentry import peer_certificate

pytestmark = pytest.mark.stack


def _plain_grpc_refused(port: int) -> bool:
    """A plain-text HTTP/2 preface to a TLS server gets no HTTP/2 settings frame back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        s.settimeout(5)
        try:
            reply = s.recv(64)
        except (TimeoutError, ConnectionResetError):
            return True
    return not (len(reply) >= 9 and reply[3] == 0x04)  # frame type 4: SETTINGS, a plain server's answer


def test_placement_and_scheduler_speak_mtls_with_their_own_identity_and_stop_cleanly():
    name = unique_name("t-plane")
    plane = secure_plane.start_plane(name)
    try:
        pids = json.loads((apps_dir() / f"{name}.json").read_text())["pids"]
        ids = {
            part: peer_certificate(port)
            for part, port in (("placement", plane.placement_port), ("scheduler", plane.scheduler_port))
        }
        assert ids["placement"].spiffe_id == "spiffe://cluster.local/ns/default/dapr-placement", ids
        assert ids["scheduler"].spiffe_id == "spiffe://cluster.local/ns/default/dapr-scheduler", ids
        assert _plain_grpc_refused(plane.placement_port) and _plain_grpc_refused(plane.scheduler_port)
        assert "--enable-mtls" in plane.sidecar_args() and plane.sidecar_env()["DAPR_TRUST_ANCHORS"].startswith(
            "-----BEGIN"
        )
    finally:
        secure_plane.stop_plane(name)
    assert not any(procs.alive(p) for p in pids)
    assert secure_plane.load_plane(name) is None and not (apps_dir() / name).exists()
    assert not (apps_dir() / f"sentry-{name}.json").exists()


def test_a_plane_started_again_under_its_name_replaces_the_first():
    name = unique_name("t-again")
    first = secure_plane.start_plane(name)
    try:
        first_pids = [
            *json.loads((apps_dir() / f"{name}.json").read_text())["pids"],
            *json.loads((apps_dir() / f"{first.sentry_name}.json").read_text())["pids"],
        ]
        second = secure_plane.start_plane(name)
        assert not [p for p in first_pids if procs.alive(p)], "the first plane's processes are still running"
        assert peer_certificate(second.placement_port).spiffe_id.endswith("/dapr-placement")
    finally:
        secure_plane.stop_plane(name)
