"""A private Dapr control plane with mutual TLS: sentry, placement and
scheduler as local processes on free loopback ports.

The lab stack's placement and scheduler speak plain gRPC, so a sidecar with
mTLS cannot host actors or workflows on them. This plane gives such sidecars
their own: sentry certifies the sidecars *and* placement and scheduler, and
every hop between them is mutual TLS. Access-control policies need it, since
a callee knows its caller only by the SPIFFE id in the caller's certificate.

    plane = start_plane("plane-demo")
    app = start_app(..., sidecar_args=plane.sidecar_args(), sidecar_env=plane.sidecar_env())
    stop_plane(plane.name)

Each part has a registry record named like an app (ending in the run token),
so `lab-env down` and a grader's clean-up stop it too.
"""

from __future__ import annotations

import atexit
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from lab_env.core import registry
from lab_env.core.names import run_token
from lab_env.core.paths import dapr_bin
from lab_env.core.ports import free_ports
from lab_env.core.probes import http_status
from lab_env.errors import LabEnvError
from lab_env.runtime import sentry as ca
from lab_env.runtime.apps import apps_dir


@dataclass
class SecurePlane:
    name: str
    sentry_name: str
    sentry_address: str
    trust_anchors_file: str
    placement_port: int
    scheduler_port: int
    workdir: str

    def sidecar_args(self) -> list[str]:
        """daprd flags: mTLS from this plane's sentry, actors and workflows on its placement and scheduler."""
        return ca.mtls_args(
            self.sentry_address,
            placement=f"127.0.0.1:{self.placement_port}",
            scheduler=f"127.0.0.1:{self.scheduler_port}",
        )

    def sidecar_env(self) -> dict[str, str]:
        return {"DAPR_TRUST_ANCHORS": Path(self.trust_anchors_file).read_text()}


def start_plane(name: str, *, detach: bool = False, timeout: float = 90.0) -> SecurePlane:
    """Start sentry, then placement and scheduler certified by it; wait until all three serve.
    On any failure everything started is stopped again. ``detach``: it outlives this process."""
    for binary in ("sentry", "placement", "scheduler"):
        if not dapr_bin(binary).exists():
            raise LabEnvError(f"Dapr's {binary} is not installed", "run `lab-env setup`")
    if registry.load(name) is not None:  # started again (a cell run twice): the new plane replaces the old
        stop_plane(name)
    authority = ca.start_sentry(f"sentry-{name}", timeout=timeout, detach=True)
    workdir = apps_dir() / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    etcd_dir = _etcd_dir(name, workdir)
    shutil.rmtree(etcd_dir, ignore_errors=True)
    p_grpc, p_health, p_raft, s_grpc, s_health, s_etcd, s_peer = free_ports(7)
    plane = SecurePlane(
        name, authority.name, authority.address, str(authority.credentials / "ca.crt"), p_grpc, s_grpc, str(workdir)
    )
    tls = [
        "--tls-enabled",
        "--trust-domain",
        ca.CONTROL_PLANE_TRUST_DOMAIN,
        "--trust-anchors-file",
        plane.trust_anchors_file,
        "--sentry-address",
        authority.address,
        "--listen-address",
        "127.0.0.1",
        "--enable-metrics=false",
        "--log-level",
        "info",
    ]
    argvs = {
        "placement": [
            str(dapr_bin("placement")),
            "--port",
            str(p_grpc),
            "--healthz-port",
            str(p_health),
            "--id",
            "placement-0",
            "--initial-cluster",
            f"placement-0=127.0.0.1:{p_raft}",
            *tls,
        ],
        "scheduler": [
            str(dapr_bin("scheduler")),
            "--port",
            str(s_grpc),
            "--healthz-port",
            str(s_health),
            "--override-broadcast-host-port",
            f"127.0.0.1:{s_grpc}",
            "--id",
            "dapr-scheduler-server-0",
            "--etcd-data-dir",
            str(etcd_dir),
            "--etcd-client-port",
            str(s_etcd),
            "--etcd-initial-cluster",
            f"dapr-scheduler-server-0=http://127.0.0.1:{s_peer}",
            *tls,
        ],
    }
    from lab_env.stack.services import HEALTHZ_HOST_VAR

    env = {HEALTHZ_HOST_VAR: "127.0.0.1", "LAB_RUN_TOKEN": run_token()}
    health = {"placement": p_health, "scheduler": s_health}

    def _healthy(port: int) -> Callable[[], bool]:
        return lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200

    parts = {
        f"mTLS {part}": registry.Managed(part, argv, workdir / f"{part}.log", env=env, ready=_healthy(health[part]))
        for part, argv in argvs.items()
    }
    if not detach:
        atexit.register(stop_plane, name)
    try:
        registry.launch(registry.Record(name, token=run_token(), extra={"plane": asdict(plane)}), parts, timeout, name)
    except BaseException:
        stop_plane(name)
        raise
    return plane


def load_plane(name: str) -> SecurePlane | None:
    """The plane ``name`` as its record has it (started by any process), or None."""
    record = registry.load(name)
    try:
        return SecurePlane(**record.extra["plane"]) if record else None
    except (KeyError, TypeError):
        return None


def stop_plane(name: str) -> None:
    """Stop placement, scheduler and sentry, and delete the plane's files. Safe to call twice."""
    plane = load_plane(name)
    registry.stop(name, timeout=10)
    sentry_name = plane.sentry_name if plane else f"sentry-{name}"
    ca.stop_sentry_named(sentry_name)
    shutil.rmtree(apps_dir() / name, ignore_errors=True)
    shutil.rmtree(_in_memory_etcd(name), ignore_errors=True)  # wherever it was started: the setting may be gone


def _etcd_dir(name: str, workdir: Path) -> Path:
    """Where the plane's scheduler keeps its etcd: in the plane's folder, or in memory (/dev/shm) with
    LAB_PLANE_ETCD_IN_MEMORY=1, a lever bench/market_levers.py measures (the plane's files go at its stop
    either way; in memory they also go with the machine)."""
    if os.environ.get("LAB_PLANE_ETCD_IN_MEMORY") == "1" and Path("/dev/shm").is_dir():
        return _in_memory_etcd(name)
    return workdir / "etcd"


def _in_memory_etcd(name: str) -> Path:
    return Path("/dev/shm") / f"lab-env-{name}-etcd"
