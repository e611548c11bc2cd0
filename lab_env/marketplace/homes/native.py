"""The native home: an agent-home spec rendered for the real Dapr CLI's
multi-app run (`dapr run -f dapr.yaml`), on this machine's lab stack.

    folder/dapr.yaml             apps: one entry per agent replica
    folder/resources/*.yaml      the Components, scoped as in the spec, and
                                 the secret store (local.env: secrets are
                                 read from the environment, never a file,
                                 and only from variables named LAB_SECRET_*)
    folder/config/<app>.yaml     each agent's Configuration (access control)
    folder/runtime/.dapr/bin/daprd
                                 what the CLI starts as daprd: the real one,
                                 with its internal gRPC and metrics on
                                 127.0.0.1 (CLI 1.12 cannot say so) and, with
                                 a sentry, mTLS
    folder/apps/<app>/           each agent's working folder (the CLI's logs)

One instance per agent (replicas and scaling are the Kubernetes home's):
agents keep the spec's app port, and the caller chooses the sidecars' ports
(free ones, so two homes never collide). Components and configurations are the Kubernetes home's own
objects (kube.py), so the two homes cannot drift apart.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lab_env.core import procs, registry
from lab_env.core.names import run_token
from lab_env.core.paths import dapr_bin
from lab_env.core.ports import free_ports
from lab_env.core.probes import Probe, Waiting, http_status, tcp_open, wait_all
from lab_env.core.profile import current
from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import kube
from lab_env.marketplace.homes.spec import HomeSpec
from lab_env.runtime.sidecar import health_url

SECRET_STORE = kube.SECRET_STORE
# local.env serves only variables with this prefix (it strips it): without it,
# its secrets API would hand out the sidecar's whole environment, which is the
# environment of whoever started the home (a grader's, say).
SECRET_PREFIX = "LAB_SECRET_"


def _env_var(secret: str) -> str:
    """'openai-api-key' -> 'OPENAI_API_KEY': the secret's name in local.env."""
    return secret.upper().replace("-", "_")


def secret_env(secrets: dict[str, str]) -> dict[str, str]:
    """The sidecars' environment for the spec's secret values. The same names
    unprefixed are emptied: whoever starts the home (a grader) may hold a real
    key under them, and `dapr run -f` hands its environment to every app."""
    return {
        **{_env_var(k): "" for k in secrets},
        **{SECRET_PREFIX + _env_var(k): v for k, v in secrets.items()},
    }


def resources(spec: HomeSpec) -> dict[str, dict]:
    """File name -> object: the home's Components for self-hosted daprd."""
    out = {}
    for component in kube.components(spec):
        component = {**component, "metadata": {"name": component["metadata"]["name"]}}
        if component["spec"]["type"] == "secretstores.kubernetes":
            component["spec"] = {
                "type": "secretstores.local.env",
                "version": "v1",
                "metadata": [{"name": "prefix", "value": SECRET_PREFIX}],
            }
        else:
            component["spec"] = {
                **component["spec"],
                "metadata": [
                    {
                        "name": m["name"],
                        "secretKeyRef": {
                            "name": _env_var(m["secretKeyRef"]["key"]),
                            "key": _env_var(m["secretKeyRef"]["key"]),
                        },
                    }
                    if "secretKeyRef" in m
                    else m
                    for m in component["spec"]["metadata"]
                ],
            }
        out[f"{component['metadata']['name']}.yaml"] = component
    resiliency = kube.resiliency(spec)
    out["resiliency.yaml"] = {**resiliency, "metadata": {"name": resiliency["metadata"]["name"]}}
    return out


# Self-hosted daprd's namespace when NAMESPACE is unset: the one in every
# local SPIFFE id (spiffe://public/ns/default/<app id>).
NAMESPACE = "default"


def configurations(spec: HomeSpec, mtls: bool = True) -> dict[str, dict]:
    """Each agent's Configuration: the Kubernetes home's, with the policies in
    the self-hosted namespace (daprd refuses a policy without one).

    With ``mtls`` False (no sentry) it has neither mtls nor access control:
    daprd given mtls refuses to start without trust anchors, and access
    control needs the caller's identity, which only its certificate proves.
    Without one, daprd refuses every call, even those the policy allows.
    """
    out = {}
    for agent in spec.agents:
        config = kube.configuration(agent, spec)
        body = {k: v for k, v in config["spec"].items() if mtls or k not in ("mtls", "accessControl")}
        if "accessControl" in body:
            policies = [{**p, "namespace": NAMESPACE} for p in body["accessControl"]["policies"]]
            body["accessControl"] = {**body["accessControl"], "policies": policies}
        out[f"{agent.app_id}.yaml"] = {
            "apiVersion": config["apiVersion"],
            "kind": "Configuration",
            "metadata": {"name": config["metadata"]["name"]},
            "spec": body,
        }
    return out


def daprd_wrapper(folder: Path, sentry=None) -> Path:
    """The `runtimePath` the run file names: a daprd that is the real one with
    our flags added. ``sentry`` (a runtime.sentry.Sentry) turns mTLS on."""
    extra = _sidecar_flags(sentry)
    exports = ""
    if sentry is not None:
        anchors = shlex.quote(str(sentry.credentials / "ca.crt"))
        exports = f'DAPR_TRUST_ANCHORS="$(cat {anchors})"\nexport DAPR_TRUST_ANCHORS\n'
    runtime = folder / "runtime"
    script = runtime / ".dapr" / "bin" / "daprd"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "#!/bin/sh\n# Written by lab_env/marketplace/homes/native.py: the lab's daprd with the home's flags.\n"
        + exports
        + f'exec {shlex.quote(str(dapr_bin("daprd")))} "$@" {shlex.join(extra)}\n'
    )
    script.chmod(0o755)
    return runtime


def _sidecar_flags(sentry) -> list[str]:
    flags = ["--dapr-internal-grpc-listen-address", "127.0.0.1", "--metrics-listen-address", "127.0.0.1"]
    # The CLI passes its own placement address; mTLS sidecars go without
    # placement and scheduler here (see runtime/sentry.py), so ours come last and win.
    return flags + (sentry.sidecar_args() if sentry is not None else [])


def run_file(
    spec: HomeSpec,
    folder: Path,
    sidecar_ports: dict[str, tuple[int, ...]],
    app_dir: Path,
    python: str = sys.executable,
    sentry=None,
) -> dict:
    """The `dapr run -f` template: ``sidecar_ports`` maps each app id to its
    sidecar's (HTTP, gRPC, internal gRPC, metrics) ports; ``app_dir`` is where
    the apps' modules import from."""
    runtime = daprd_wrapper(folder, sentry)
    prof = current()
    apps = []
    for agent in spec.agents:
        http, grpc, internal, metrics = sidecar_ports[agent.app_id]
        work = folder / "apps" / agent.app_id
        work.mkdir(parents=True, exist_ok=True)
        apps.append(
            {
                "appID": agent.app_id,
                "appDirPath": str(work),
                "appPort": agent.port,
                "appProtocol": "http",
                "daprHTTPPort": http,
                "daprGRPCPort": grpc,
                "daprInternalGRPCPort": internal,
                "metricsPort": metrics,
                "apiListenAddresses": "127.0.0.1",
                # CLI 1.12 otherwise passes -1 for both, which daprd 1.18 takes as
                # "no limit" on request bodies: keep Dapr's defaults, as lab_env's sidecars do.
                "daprHTTPMaxRequestSize": 4,  # MB, Dapr's default
                "daprHTTPReadBufferSize": 4,  # KB, Dapr's default
                "placementHostAddress": prof.placement_address,
                "runtimePath": str(runtime),
                "resourcesPaths": [str(folder / "resources")],
                "configFilePath": str(folder / "config" / f"{agent.app_id}.yaml"),
                # The run token names the actor types (lab_env.runtime.actors.actor_type), as for apps lab_env starts.
                "env": {**agent.env, "PYTHONPATH": str(app_dir), "LAB_RUN_TOKEN": run_token(), **prof.dapr_cli_env()},
                "command": [
                    python,
                    "-m",
                    "uvicorn",
                    agent.app,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(agent.port),
                    "--log-level",
                    "warning",
                ],
                "appLogDestination": "file",
                "daprdLogDestination": "file",
            }
        )
    return {"version": 1, "apps": apps}


def write(spec: HomeSpec, folder: Path, sidecar_ports: dict[str, tuple[int, ...]], app_dir: Path, sentry=None) -> Path:
    """Write the native home into ``folder``; returns the path of dapr.yaml."""
    import yaml

    for sub, files in (("resources", resources(spec)), ("config", configurations(spec, mtls=sentry is not None))):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for name, obj in files.items():
            (folder / sub / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    path = folder / "dapr.yaml"
    path.write_text(yaml.safe_dump(run_file(spec, folder, sidecar_ports, app_dir, sentry=sentry), sort_keys=False))
    return path


@dataclass
class RunningHome:
    """A native home started by the real `dapr run -f`."""

    run_file: Path
    pid: int  # the CLI; its apps and sidecars run in its process group
    sidecars: dict[str, str]  # app id -> sidecar URL
    record: str = ""  # its process registry record: `lab-env down` stops a home its notebook left


def start(
    spec: HomeSpec,
    folder: Path,
    app_dir: Path,
    secrets: dict[str, str] | None = None,
    sentry=None,
    timeout: float = 120.0,
) -> RunningHome:
    """Write the home and start it with `dapr run -f`; wait until every agent
    and sidecar answers. ``secrets`` are the values of the spec's secrets
    (the local.env store reads them from the sidecars' environment)."""
    from lab_env.stack.provision import install_dapr_cli

    install_dapr_cli()
    busy = [f"{a.app_id}:{a.port}" for a in spec.agents if not procs.port_is_free(a.port)]
    if busy:
        raise LabEnvError(
            f"the home's app ports are taken: {', '.join(busy)}",
            "stop the other home first, or change the ports in the spec",
        )
    for attempt in range(PORT_ATTEMPTS):
        try:
            return _start_once(spec, folder, app_dir, secrets, sentry, timeout)
        except LabEnvError as err:
            # The CLI checks each app's sidecar ports before it starts that app, and stops the apps it started
            # when one is refused (a port another program bound since free_ports chose it); _start_once has
            # stopped the rest, so fresh ports are safe to take. (A port taken after the CLI's check makes
            # daprd fail instead: the home then times out with daprd's error, and is not retried.)
            if PORT_REFUSED not in str(err) or attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


PORT_ATTEMPTS = 3
PORT_REFUSED = "is not available"  # the dapr CLI's words for a run file's port someone holds


def _start_once(
    spec: HomeSpec, folder: Path, app_dir: Path, secrets: dict[str, str] | None, sentry, timeout: float
) -> RunningHome:
    ports = free_ports(4 * len(spec.agents))
    sidecar_ports = {a.app_id: tuple(ports[4 * i : 4 * i + 4]) for i, a in enumerate(spec.agents)}
    path = write(spec, folder, sidecar_ports, app_dir, sentry=sentry)
    procs.hand_over(folder, "apps")  # a grader's check in a sandbox: the CLI there writes its apps' logs
    env = {**current().dapr_cli_env(), **secret_env(secrets or {})}
    cli = procs.spawn([dapr_bin("dapr"), "run", "-f", str(path)], folder / "dapr-run.log", env=env, cwd=folder)
    record = registry.Record(f"home-{spec.home}", token=run_token())
    record.add(cli.pid, registry.start_time(cli.pid))
    registry.save(record)
    sidecars = {a: f"http://127.0.0.1:{p[0]}" for a, p in sidecar_ports.items()}
    home = RunningHome(path, cli.pid, sidecars, record.name)
    waiting = {}
    for agent in spec.agents:
        waiting[f"{agent.app_id} app"] = Waiting(
            partial(tcp_open, "127.0.0.1", agent.port),
            failed=_cli_died(home),
            fix=f"see {folder / 'apps' / agent.app_id}/.dapr/logs",
        )
        waiting[f"{agent.app_id} sidecar"] = Waiting(
            _sidecar_healthy(home.sidecars[agent.app_id]),
            failed=_cli_died(home),
            fix=f"see {folder / 'apps' / agent.app_id}/.dapr/logs",
        )
    try:
        wait_all(waiting, timeout, f"home {spec.home}", progress=False)
    except BaseException:
        stop(home)
        raise
    return home


def _sidecar_healthy(url: str) -> Probe:
    """The sidecar at ``url`` answers its health check with 204."""
    return lambda: http_status(health_url(url)) == 204


def _cli_died(home: RunningHome):
    def check() -> str | None:
        if procs.alive(home.pid):
            return None
        return "dapr run -f exited: " + (procs.tail(home.run_file.parent / "dapr-run.log", 1).strip() or "no output")

    return check


def stop(home: RunningHome) -> None:
    """`dapr stop -f`, then make sure every process of the run is gone (the
    CLI may exit first and leave its apps to finish on their own)."""
    import psutil

    try:
        members = [psutil.Process(home.pid), *psutil.Process(home.pid).children(recursive=True)]
    except psutil.Error:
        members = []
    try:
        try:  # in the run's folder: in a grading sandbox, it stops the run in there
            procs.capture([dapr_bin("dapr"), "stop", "-f", home.run_file], home.run_file.parent, timeout=120)
        except (subprocess.TimeoutExpired, OSError):
            pass  # what it left is stopped below
    finally:
        try:
            procs.stop(home.pid, timeout=20)
            _, left = psutil.wait_procs(members, timeout=20)
            for proc in left:
                with contextlib.suppress(psutil.Error):  # it may end on its own meanwhile
                    proc.kill()
            psutil.wait_procs(left, timeout=5)
        finally:
            if home.record:
                registry.forget(home.record)


@contextmanager
def running(spec: HomeSpec, folder: Path, app_dir: Path, **kwargs) -> Iterator[RunningHome]:
    home = start(spec, folder, app_dir, **kwargs)
    try:
        yield home
    finally:
        stop(home)
