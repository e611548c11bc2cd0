"""The worker's handles on what a sandboxed kernel started: the checks use them as DaprApp and Cluster.

Ports and names come from the sandbox's own records, read inside it (inside.py): the
worker connects to them as to any app. Everything that touches a process (crash,
restart, alive, logs, a broker's kill, pause or restart) runs inside the sandbox as
its user; the worker never signals a pid or runs a command the learner recorded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.errors import LabEnvError
from lab_env.grading.sandbox import Sandbox
from lab_env.runtime.apps import DaprApp, is_app_id
from lab_env.runtime.clusters.native import KubectlError, NativeCluster
from lab_env.runtime.kafka.replicated import Cluster
from lab_env.stack.engine import Engine

if TYPE_CHECKING:
    from lab_env.marketplace.market.control import Market


class SandboxedApp(DaprApp):
    box: Sandbox
    engine: Engine

    def _ask(self, *args: str, timeout: float = 300.0) -> Any:
        return self.box.exec_lab_env(self.engine, "app", self.app_id, *args, timeout=timeout)

    def crash(self) -> None:
        self._ask("crash")

    def restart(self, timeout: float = 60.0) -> None:
        self._ask("restart", str(timeout), timeout=timeout + 120)

    def alive(self) -> bool:
        return bool(self._ask("alive"))

    def exit_reason(self) -> str | None:
        return self._ask("exit_reason")

    def logs(self, which: str = "daprd", lines: int = 40) -> str:
        return str(self._ask("logs", which, str(lines)))

    def _sync(self) -> None:  # pids live in the sandbox only
        pass

    def _save(self) -> None:  # the record is the sandbox's
        pass


def _harmless(box: Sandbox, value: str) -> bool:
    """Not a path, or a path in the sandbox's folder with no link on the way to it (now)."""
    if not value.startswith("/"):
        return True
    path = Path(os.path.normpath(value))
    if not path.is_relative_to(box.job):
        return False
    step = box.job
    for part in path.relative_to(box.job).parts:
        step = step / part
        if step.is_symlink():
            return False
    return True


def sandboxed_app(box: Sandbox, engine: Engine, app_id: str) -> SandboxedApp:
    """The handle of an app the sandboxed kernel started (a LabEnvError if it is not running)."""
    return _from_record(box, engine, app_id, box.exec_lab_env(engine, "app", app_id, "record", timeout=60))


def _from_record(box: Sandbox, engine: Engine, app_id: str, spec: dict[str, Any]) -> SandboxedApp:
    # The record is the learner's to write: only the id asked for, and ports, are taken from it.
    if spec.get("app_id") != app_id:
        raise LabEnvError(f"the sandbox answered for {spec.get('app_id')!r}, not {app_id!r}", "see the worker's log")
    for key in ("http_port", "grpc_port", "app_port", "internal_port"):
        port = spec.get(key)
        if port is None and key == "app_port":
            continue
        if type(port) is not int or not 0 < port < 65536:
            raise LabEnvError(f"{app_id}'s {key} is not a port: {port!r}", "see the worker's log")
    app = SandboxedApp(
        spec["app_id"],
        int(spec["http_port"]),
        int(spec["grpc_port"]),
        int(spec["app_port"]) if spec["app_port"] is not None else None,
        Path(spec["workdir"]),
        # No command, cwd or sidecar argv: restarting happens inside. Of the app's environment,
        # a path is kept only inside the sandbox's folder (lab 04's ledger; checks read it).
        env={k: str(v) for k, v in dict(spec.get("env") or {}).items() if _harmless(box, str(v))},
        sidecar_env={k: str(v) for k, v in dict(spec.get("sidecar_env") or {}).items() if _harmless(box, str(v))},
        internal_port=int(spec["internal_port"]),
    )
    app.box, app.engine = box, engine
    return app


def sandboxed_apps(box: Sandbox, engine: Engine, token: str) -> list[DaprApp]:
    """Handles on the running apps of the sandbox's run (as apps.apps_of_run lists them there)."""
    records = box.exec_lab_env(engine, "apps", token, timeout=60)
    apps: list[DaprApp] = []
    for spec in records:
        app_id = str(spec.get("app_id"))
        if is_app_id(app_id) and app_id.endswith(f"-{token}"):
            apps.append(_from_record(box, engine, app_id, spec))
    return apps


class SandboxedNode:
    """A Kafka node of a sandboxed cluster: only whether it runs is asked of it here."""

    def __init__(self, cluster: SandboxedCluster, node: int) -> None:
        self.cluster, self.node = cluster, node

    def alive(self) -> bool:
        return bool(self.cluster.ask("alive", str(self.node)))


class SandboxedCluster(Cluster):
    box: Sandbox
    engine: Engine

    def ask(self, *args: str, timeout: float = 300.0) -> Any:
        return self.box.exec_lab_env(self.engine, "cluster", self.name, *args, timeout=timeout)

    def kill(self, node: int) -> None:
        self.ask("kill", str(node))

    def pause(self, node: int) -> None:
        self.ask("pause", str(node))

    def resume(self, node: int) -> None:
        self.ask("resume", str(node))

    def restart(self, *nodes: int) -> None:
        self.ask("restart", *map(str, nodes), timeout=600)

    def stop(self) -> None:  # the sandbox's removal stops it
        pass


def sandboxed_cluster(box: Sandbox, engine: Engine, name: str) -> SandboxedCluster:
    spec = box.exec_lab_env(engine, "cluster", name, "record", timeout=60)
    if spec.get("name") != name:
        raise LabEnvError(f"the sandbox answered for {spec.get('name')!r}, not {name!r}", "see the worker's log")
    cluster = SandboxedCluster(
        spec["name"], Path(spec["folder"]), {int(k): int(v) for k, v in spec["ports"].items()}, {}
    )
    cluster.box, cluster.engine = box, engine
    cluster.nodes = {node: SandboxedNode(cluster, node) for node in cluster.ports}  # type: ignore[misc]
    return cluster


def sandboxed_market(box: Sandbox, engine: Engine, name: str) -> Market:
    """The market ``name`` the sandboxed kernel started (control.attach, read inside): its app and
    carrier as sandboxed handles; names and ports only are taken from its record."""
    from lab_env.marketplace.market import control
    from lab_env.marketplace.market.control import Catalog, Market

    answer = box.exec_lab_env(engine, "market", name, "record", timeout=60)
    saved, running = answer.get("saved") or {}, {str(a) for a in answer.get("running") or []}
    app_id, carrier = str(saved.get("app_id")), str(saved.get("carrier"))
    for which in (app_id, carrier):  # the record is the learner's to write: only this run's apps
        if which in running and not (is_app_id(which) and which.endswith(f"-{box.token}")):
            raise LabEnvError(f"market {name!r} names {which!r}, not an app of this run", "see the worker's log")
    if app_id not in running:
        raise LabEnvError(f"market {name!r} is not running", "start it with `lab-env market up`")
    # More hosts of the market: only this market's own names (control.host_name), running now.
    replicas = [str(r) for r in saved.get("replicas") or [] if isinstance(r, str)]
    stem = app_id.removesuffix(f"-{box.token}")
    hosts = [
        r
        for r in replicas[:64]
        if r in running and is_app_id(r) and r.startswith(f"{stem}-host") and r.endswith(f"-{box.token}")
    ][: control.MAX_HOSTS - 1]
    view_port = saved.get("view_port")
    try:
        catalog = Catalog(**saved["catalog"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise LabEnvError(f"market {name!r}'s record has no catalog it can use", "start it with market.up") from None
    for field, value in vars(catalog).items():  # counts the checks loop over, and amounts: bounded
        if field == "unreliable":  # seller numbers
            if len(value) > catalog.sellers or not all(0 <= k < catalog.sellers for k in value):
                raise LabEnvError(f"market {name!r}'s catalog has {field}={value!r}", "start it with market.up")
            continue
        if type(value) not in (int, float) or not 0 <= value <= (1e12 if field in ("funds", "list_price") else 1e6):
            raise LabEnvError(f"market {name!r}'s catalog has {field}={value!r}", "start it with market.up")
    return Market(
        name,
        sandboxed_app(box, engine, app_id),
        control.orders_topic(name),  # the market's own, not a topic its record names
        catalog,
        view_port if type(view_port) is int else None,
        sandboxed_app(box, engine, carrier) if carrier in running else None,
        "yours" if saved.get("trust_rule") == "yours" else "the course's",
        tuple(sandboxed_app(box, engine, host) for host in hosts),
    )


@dataclass(frozen=True)
class SandboxedNativeCluster(NativeCluster):
    """Lab 05's native cluster, started by the sandboxed kernel: kubectl runs inside the sandbox
    with its kubeconfig, which is the learner's to write (it can name a command to run)."""

    box: Sandbox | None = dataclass_field(default=None, compare=False)
    engine: Engine | None = dataclass_field(default=None, compare=False)

    def _ask(self, *args: str, timeout: float = 180.0) -> Any:
        assert self.box is not None and self.engine is not None
        return self.box.exec_lab_env(self.engine, "kube", self.name, *args, timeout=timeout)

    def _status(self) -> dict[str, Any]:
        answer = self._ask("status")  # the learner's to forge: only a well-formed answer counts
        if not isinstance(answer, dict):
            return {"running": False, "exited": []}
        exited = answer.get("exited")
        exited = [str(e)[:100] for e in exited[:20]] if isinstance(exited, list) else []
        return {"running": answer.get("running") is True, "exited": exited}

    def running(self) -> bool:
        return bool(self._status()["running"])

    def exited(self) -> list[str]:
        return list(self._status()["exited"])

    def _out(self, answer: Any) -> Any:
        if isinstance(answer, dict) and "refused" in answer:
            raise KubectlError(str(answer["refused"])[:1500])
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, list) and len(error) == 2:
            raise LabEnvError(str(error[0])[:300], str(error[1])[:300])
        if not isinstance(answer, dict) or "out" not in answer:
            raise LabEnvError("the sandbox gave no kubectl answer", "see the worker's log")
        return answer["out"]

    def get(self, kind: str, name: str | None = None, namespace: str = "default") -> dict[str, Any]:
        if name is not None:
            raise LabEnvError("a sandboxed cluster lists objects, it does not get one by name", "list and filter")
        got = self._out(self._ask("get", kind, namespace))
        if not isinstance(got, dict) or not isinstance(got.get("items"), list):
            raise LabEnvError(f"the sandbox's list of {kind} is not a list", "see the worker's log")
        return got

    def apply(self, objects: list[dict[str, Any]] | dict[str, Any], dry_run: bool = False) -> str:
        if not dry_run:
            raise LabEnvError("the grader only dry-runs manifests in a sandboxed cluster", "pass dry_run=True")
        return str(self._out(self._ask("dry-run", json.dumps(objects))))

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> str:
        raise LabEnvError("the grader never runs kubectl on a sandboxed cluster's kubeconfig", "use get or apply")


def sandboxed_native_cluster(box: Sandbox, engine: Engine, name: str) -> NativeCluster:
    """Lab 05's cluster ``name`` in the sandbox (its name checked here, its kubectl run there)."""
    return SandboxedNativeCluster(name, box=box, engine=engine)
