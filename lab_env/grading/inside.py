"""What the grader asks of a sandbox's own processes: ``python -m lab_env.grading.inside WHAT NAME [ARGS]``.

The worker runs it with ``docker exec`` as the sandbox's user (sandbox.exec_lab_env), so a crash
kills the sandbox's pids and a restart relaunches the learner's recorded command **inside** the
sandbox, never on the grading machine. It prints one JSON line: the answer.

    apps TOKEN                 the records of that run's running apps (as app NAME record)
    app NAME record            the app's ports and launch spec (no pids: they mean nothing outside)
    app NAME crash | restart [TIMEOUT] | alive | exit_reason | logs WHICH LINES
    cluster NAME record        the Kafka cluster's name, folder and node ports
    cluster NAME kill|pause|resume NODE | restart NODE... | alive NODE
    market NAME record         the market's record as `market.up` saved it, and which of its app
                               and carrier run
    kube NAME status           whether lab 05's native cluster runs, and its exited components
    kube NAME get KIND NAMESPACE | dry-run MANIFEST_JSON
                               kubectl with the cluster's kubeconfig, run here as the sandbox's user
                               (a kubeconfig can name a command): {"out": ...}, {"refused": why}
                               or {"error": [problem, fix]}
    tether -- ARGV...          run ARGV until it ends or this command's input closes (the grader's
                               wrapper of a process its check started in the sandbox was stopped)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from lab_env.core import procs
from lab_env.errors import LabEnvError
from lab_env.runtime.apps import apps_of_run, load_app

_APP_FIELDS = ("http_port", "grpc_port", "app_port", "workdir", "command", "cwd", "env", "sidecar_argv", "sidecar_env")


def app(name: str, what: str, *args: str) -> Any:
    handle = load_app(name)
    if what == "record":
        return {"app_id": handle.app_id, "internal_port": handle.internal_port} | {
            key: str(value) if key in ("workdir", "cwd") and value is not None else value
            for key, value in ((k, getattr(handle, k)) for k in _APP_FIELDS)
        }
    if what == "crash":
        handle.crash()
    elif what == "restart":
        handle.restart(float(args[0]) if args else 60.0)
    elif what == "alive":
        return handle.alive()
    elif what == "exit_reason":
        return handle.exit_reason()
    elif what == "logs":
        return handle.logs(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown app request {what!r}")
    return None


def cluster(name: str, what: str, *args: str) -> Any:
    from lab_env.runtime.kafka.replicated import load_cluster  # lab 03's only: confluent_kafka is slow to import

    handle = load_cluster(name, all_running=False)  # a node may be killed or paused mid-drill
    nodes = [int(a) for a in args]
    if what == "record":
        return {"name": handle.name, "folder": str(handle.folder), "ports": handle.ports}
    if what == "alive":
        return handle.nodes[nodes[0]].alive()
    if what == "restart":
        handle.restart(*nodes)
    elif what in ("kill", "pause", "resume"):
        getattr(handle, what)(nodes[0])
    else:
        raise SystemExit(f"unknown cluster request {what!r}")
    return None


def market(name: str, what: str) -> Any:
    from lab_env.marketplace.market.control import record_path  # lab 07's only
    from lab_env.runtime.apps import running_apps

    if what != "record":
        raise SystemExit(f"unknown market request {what!r}")
    try:
        saved = json.loads(record_path(name).read_text())
    except FileNotFoundError:
        raise SystemExit(f"no market called {name!r}") from None  # its last line is what the worker quotes
    running = running_apps()
    hosts = [r for r in saved.get("replicas") or [] if isinstance(r, str)]  # the worker keeps this run's only
    named = [a for a in (saved.get("app_id"), saved.get("carrier"), *hosts) if a in running]
    return {"saved": saved, "running": named[:16]}


def kube(name: str, what: str, *args: str) -> Any:
    from lab_env.runtime.clusters.native import KubectlError, NativeCluster  # lab 05's only

    handle = NativeCluster(name)
    if what == "status":
        return {"running": handle.running(), "exited": handle.exited()}
    try:
        if what == "get":
            return {"out": handle.get(args[0], namespace=args[1])}
        if what == "dry-run":
            return {"out": handle.apply(json.loads(args[0]), dry_run=True)}
    except KubectlError as err:
        return {"refused": str(err)}
    except LabEnvError as err:  # no such cluster here, say: the learner's message, not a traceback
        return {"error": [err.problem, err.fix]}
    raise SystemExit(f"unknown kube request {what!r}")


def _undumpable() -> None:
    """The learner's processes run as this one's user: without this they could open its
    /proc/PID/fd (to write a forged answer into its output), mem and environ. A program it
    starts (``tether``) is dumpable again once it execs, as the learner's own should be.
    sandbox.py starts it so from its first line; this covers a start by hand."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE, 0
        raise SystemExit("PR_SET_DUMPABLE failed")


def main(argv: list[str]) -> None:
    _undumpable()
    if argv[:2] == ["tether", "--"]:
        sys.exit(procs.tethered(argv[2:], sys.stdin.buffer))
    kind, name, *rest = argv
    if kind == "apps":  # the records of the run ``name``'s running apps (one request, not one per app)
        print(json.dumps([app(a.app_id, "record") for a in apps_of_run(name)]))
        return
    what, *args = rest
    answer = {"app": app, "cluster": cluster, "market": market, "kube": kube}[kind](name, what, *args)
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1:])
