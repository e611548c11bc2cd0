"""Dapr's sentry run natively: the certificate authority that gives every
sidecar a short-lived workload certificate, so sidecar-to-sidecar calls use
mutual TLS and each sidecar knows who calls it (its SPIFFE id).

    with sentry() as ca:
        app = start_app(..., sidecar_args=ca.sidecar_args(), sidecar_env=ca.sidecar_env())
        peer_certificate(app.internal_port).spiffe_id   # spiffe://public/ns/default/<app id>

Sentry makes its own root and issuer the first time it starts with an empty
credentials folder. It then reloads them a moment later (it watches the
folder), so ``start_sentry`` lets a first run make them, stops it, and starts
sentry again on the finished credentials: no sidecar meets a reload.

In Kubernetes, placement and scheduler get their certificates from sentry
too. The lab's stack runs them without mTLS, so a sidecar using this sentry
alone runs without actors, workflows and reminders (``sidecar_args`` says so
to daprd); lab_env.runtime.secure_plane adds a placement and a scheduler with mTLS
for sidecars that need them (the capstone's market).
"""

from __future__ import annotations

import atexit
import datetime as dt
import secrets
import shutil
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab_env.core import registry
from lab_env.core.paths import dapr_bin
from lab_env.core.ports import free_ports
from lab_env.core.probes import http_status
from lab_env.errors import LabEnvError
from lab_env.runtime.apps import apps_dir, run_token, unique_name

# The control plane's trust domain: the one the Kubernetes home's Configuration names.
CONTROL_PLANE_TRUST_DOMAIN = "cluster.local"
CREDENTIALS = ("ca.crt", "issuer.crt", "issuer.key")
_CONFIG = """apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: lab-sentry
spec:
  mtls:
    enabled: true
    workloadCertTTL: 1h
    allowedClockSkew: 15m
"""


@dataclass
class Sentry:
    name: str
    port: int
    healthz_port: int
    workdir: Path
    pid: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def credentials(self) -> Path:
        return self.workdir / "credentials"

    @property
    def log(self) -> Path:
        return self.workdir / "sentry.log"

    def trust_anchors(self) -> str:
        """The root certificate (public): what a sidecar trusts."""
        return (self.credentials / "ca.crt").read_text()

    def sidecar_args(self) -> list[str]:
        # placement and scheduler of the lab stack speak plain gRPC (see the module doc): none here
        return mtls_args(self.address, placement="", scheduler="")

    def sidecar_env(self) -> dict[str, str]:
        return {"DAPR_TRUST_ANCHORS": self.trust_anchors()}


def mtls_args(sentry_address: str, *, placement: str, scheduler: str) -> list[str]:
    """daprd flags: workload certificates from the sentry at ``sentry_address``, and the
    placement and scheduler to use (empty: none)."""
    return [
        *("--enable-mtls", "--sentry-address", sentry_address),
        *("--control-plane-trust-domain", CONTROL_PLANE_TRUST_DOMAIN),
        *("--placement-host-address", placement, "--scheduler-host-address", scheduler),
    ]


def _argv(s: Sentry) -> list[str]:
    return [
        str(dapr_bin("sentry")),
        "--issuer-credentials",
        str(s.credentials),
        "--trust-domain",
        CONTROL_PLANE_TRUST_DOMAIN,
        "--config",
        str(s.workdir / "sentry.yaml"),
        "--port",
        str(s.port),
        "--listen-address",
        "127.0.0.1",
        "--healthz-port",
        str(s.healthz_port),
        "--enable-metrics=false",
        "--log-level",
        "info",
    ]


def _env() -> dict[str, str]:
    from lab_env.stack.services import HEALTHZ_HOST_VAR

    return {HEALTHZ_HOST_VAR: "127.0.0.1", "LAB_RUN_TOKEN": run_token()}


def start_sentry(name: str | None = None, timeout: float = 60.0, detach: bool = False) -> Sentry:
    """Start a sentry on free loopback ports with fresh credentials; wait until it serves.
    ``detach``: it outlives this process (stop it with stop_sentry_named or `lab-env down`)."""
    if not dapr_bin("sentry").exists():
        raise LabEnvError("Dapr's sentry is not installed", "run `lab-env setup` (it builds sentry with the runtime)")
    if name:
        registry.stop(name, timeout=10)  # one of this name still running is replaced, not left behind
    else:
        name = f"{unique_name('sentry')}-{secrets.token_hex(3)}"
    port, healthz = free_ports(2)
    s = Sentry(name, port, healthz, apps_dir() / name)
    if s.workdir.exists():
        shutil.rmtree(s.workdir)
    s.credentials.mkdir(parents=True)
    (s.workdir / "sentry.yaml").write_text(_CONFIG)
    if not detach:
        atexit.register(stop_sentry, s)
    phases = {
        "makes its root and issuer": lambda: all(
            (s.credentials / f).exists() and (s.credentials / f).stat().st_size for f in CREDENTIALS
        ),
        "serves": lambda: http_status(f"http://127.0.0.1:{s.healthz_port}/healthz") == 200,
    }
    try:
        for phase, ready in phases.items():
            process = registry.Managed("sentry", _argv(s), s.log, env=_env(), ready=ready)
            # A record for each run: `lab-env down` and a grader's clean-up find it.
            registry.launch(registry.Record(name, token=run_token()), {f"sentry {phase}": process}, timeout, name)
            s.pid = process.pid
            if phase == "makes its root and issuer":
                registry.stop(name, timeout=10)
    except BaseException:
        stop_sentry(s)
        raise
    return s


def stop_sentry(s: Sentry) -> None:
    registry.stop(s.name, timeout=10)  # its record holds its pid and start time
    s.pid = 0
    shutil.rmtree(s.workdir, ignore_errors=True)


def stop_sentry_named(name: str) -> None:
    """stop_sentry for a sentry started by any process, found by its registry record."""
    registry.stop(name, timeout=10)
    shutil.rmtree(apps_dir() / name, ignore_errors=True)


@contextmanager
def sentry(timeout: float = 60.0) -> Iterator[Sentry]:
    s = start_sentry(timeout=timeout)
    try:
        yield s
    finally:
        stop_sentry(s)


@dataclass(frozen=True)
class PeerCertificate:
    spiffe_id: str | None
    issuer: str
    not_after: dt.datetime
    lifetime: dt.timedelta


def peer_certificate(port: int, timeout: float = 10.0) -> PeerCertificate | None:
    """The certificate a sidecar's internal gRPC port presents, or None when
    the port speaks plain TCP (no mTLS). Read only: nothing is verified."""
    from cryptography import x509

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return None
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    try:
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    except x509.ExtensionNotFound:
        uris = []
    return PeerCertificate(
        next((u for u in uris if u.startswith("spiffe://")), None),
        cert.issuer.rfc4514_string(),
        cert.not_valid_after_utc,
        cert.not_valid_after_utc - cert.not_valid_before_utc,
    )


def forged_identity(spiffe_id: str) -> tuple[bytes, bytes]:
    """A certificate claiming ``spiffe_id``, signed by a CA nobody trusts:
    (PEM certificate, PEM key). What an attacker could make."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "not-dapr-sentry")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
