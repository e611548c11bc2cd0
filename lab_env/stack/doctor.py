"""`lab-env doctor`: every check a broken lab usually fails, each with its fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from lab_env.core import procs
from lab_env.core.paths import dapr_bin
from lab_env.errors import LabEnvError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _run(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except LabEnvError as err:
        return Check(name, False, err.problem, err.fix or "")
    except Exception as err:  # a doctor reports, it does not crash
        return Check(name, False, f"{type(err).__name__}: {err}", "run `lab-env setup`, then `lab-env doctor` again")


def check_versions() -> str:
    from lab_env.core.versions import pins
    from lab_env.stack.provision.dapr import installed_version
    from lab_env.stack.provision.kafka import kafka_installed
    from lab_env.stack.provision.redis import redis_server

    p = pins()
    found = installed_version(dapr_bin("daprd"))
    if found != p.dapr_runtime:
        raise LabEnvError(f"daprd is {found or 'missing'}, pinned {p.dapr_runtime}", "run `lab-env setup`")
    for name in ("placement", "scheduler"):
        if not dapr_bin(name).exists():
            raise LabEnvError(f"{name} is missing from {dapr_bin(name).parent}", "run `lab-env setup`")
    sdk = metadata.version("dapr")
    if sdk.split(".")[:2] != p.dapr_runtime.split(".")[:2]:
        raise LabEnvError(
            f"Python SDK dapr {sdk} does not match runtime {p.dapr_runtime}", "run `make setup` to re-sync the venv"
        )
    if not kafka_installed():
        raise LabEnvError(f"Kafka {p.kafka} jars are missing", "run `lab-env setup`")
    if not redis_server():
        raise LabEnvError("redis-server is not installed", "run `lab-env setup`")
    return f"dapr {found} (SDK {sdk}), kafka {p.kafka}, redis-server found"


def check_stack() -> str:
    from lab_env.stack import status

    bad = []
    for st in status():
        if st.ready:
            continue
        owners = {port: procs.port_owner(port) for port in st.ports.values()}
        taken = {port: who for port, who in owners.items() if who}
        if st.pid is None and taken:
            port, who = next(iter(taken.items()))
            raise LabEnvError(
                f"{st.name} is down and its port {port} is held by {who}", "stop that process, then `lab-env up`"
            )
        bad.append(st.name)
    if bad:
        raise LabEnvError(f"not running: {', '.join(bad)}", "run `lab-env up`")
    return "redis, kafka, placement, scheduler answer their readiness probes"


def check_components() -> str:
    from lab_env.stack.components import CONFIG_FILE, load_resource, validate_all

    docs = validate_all()
    load_resource(CONFIG_FILE)
    return ", ".join(f"{d['metadata']['name']} ({d['spec'].get('type', d['kind'])})" for d in docs)


def check_round_trip() -> str:
    from lab_env.runtime import sidecar
    from lab_env.runtime.apps import dapr_app, unique_name

    with dapr_app(unique_name("doctor"), components=["statestore"], timeout=45) as app:
        key = unique_name("doctor-key")
        store, item = sidecar.state_path("statestore"), sidecar.state_path("statestore", key)
        sidecar.post(app, store, json=[{"key": key, "value": {"ok": True}}], timeout=5).raise_for_status()
        got = sidecar.get(app, item, timeout=5).raise_for_status().json()
        sidecar.delete(app, item, timeout=5).raise_for_status()
    if got != {"ok": True}:
        raise LabEnvError(f"state round trip returned {got!r}", "see the sidecar log under the state dir")
    return "saved and read back a key through a daprd sidecar into Redis"


def check_engine() -> str:
    """Informational: a missing engine is not a failure (the native stack needs none)."""
    from lab_env.stack import engine
    from lab_env.stack.images import busybox

    found = engine.find()
    if found is None:
        return "none (optional: `lab-env setup --containers`, then `lab-env engine up`)"
    # Whether privileged containers work is tried on lab-env's own engine only: never a
    # container started on the user's engine by a read-only command.
    try:
        image = busybox.REF if found.managed and busybox.built(found) else None
        return f"{engine.info(found, image).line()} on {found.host}"
    except LabEnvError as err:  # optional: reported, never a red doctor
        return f"an engine answers on {found.host}, but {err.problem}"


def run_doctor() -> list[Check]:
    checks = [
        _run("versions", check_versions),
        _run("components", check_components),
        _run("stack", check_stack),
    ]
    if checks[0].ok and checks[2].ok:
        checks.append(_run("round trip", check_round_trip))
    else:
        checks.append(Check("round trip", False, "skipped: the checks above must pass first", "fix those first"))
    checks.append(_run("engine", check_engine))
    return checks
