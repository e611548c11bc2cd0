"""Run and watch Dapr workflows from a notebook, a check or a bench.

    orders = start_workflow_app(unique_name("orders"), "order_workflow")
    wf_client = client(orders)
    instance = wf_client.schedule_new_workflow("order_workflow", input={...})
    state = wait(orders, instance)            # one clear line if it failed
    for event in history(orders, instance):   # what the engine stored
        ...

The workflows run in an app process (lab_env.runtime.workflow_host) beside its own
daprd; the notebook is only a client of that sidecar. Activities record what
they do in a ``Ledger``, an append-only SQLite file that survives a SIGKILL
of the app, so a notebook can prove which steps ran and how often.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab_env.core.probes import Waiting, http_status, wait_all, wait_until
from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp, start_app, uvicorn_command
from lab_env.stack.components import CONFIG_FILE

HOST_MODULE = "lab_env.runtime.workflow_host"
TERMINAL = ("COMPLETED", "FAILED", "TERMINATED")


class WorkflowFailed(LabEnvError):
    """A workflow instance ended FAILED. ``str()`` is one line: which workflow,
    and the error its code (or an activity's) raised."""

    def __init__(self, instance_id: str, name: str, error_type: str, message: str) -> None:
        self.instance_id, self.name, self.error_type, self.message = instance_id, name, error_type, message
        super().__init__(f"workflow {name} ({instance_id}) failed: {error_type}: {message}")


# -- the app ---------------------------------------------------------------


def start_workflow_app(
    app_id: str,
    module: str,
    *,
    cwd: Path | str | None = None,
    components: Iterable[str] = ("statestore",),
    env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
    detach: bool = False,
    sidecar_env: Mapping[str, str] | None = None,
    sidecar_args: Sequence[str] = (),
    config: Path | None = None,
) -> DaprApp:
    """Start ``module``'s workflows (and ACTORS) in an app with its sidecar.
    ``sidecar_args``, ``sidecar_env`` and ``config`` go to daprd (see start_app).

    ``module`` is importable from ``cwd`` (default: the notebook's workspace).
    The app gets LAB_LEDGER, a ledger file of its own (see ``ledger``).
    Returns once the workflow worker is connected to the sidecar.
    """
    from lab_env.notebooks.workspace import workspace

    folder = Path(cwd) if cwd else workspace()
    child_env = {
        "LAB_WORKFLOW_MODULE": module,
        "LAB_LEDGER": str(folder / f"{app_id}.ledger.sqlite"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")])),
        **(env or {}),
    }
    Path(child_env["LAB_LEDGER"]).unlink(missing_ok=True)
    app = start_app(
        app_id,
        uvicorn_command(f"{HOST_MODULE}:app"),
        cwd=folder,
        components=components,
        env=child_env,
        timeout=timeout,
        detach=detach,
        sidecar_env=sidecar_env,
        sidecar_args=sidecar_args,
        config=config or CONFIG_FILE,
    )
    wait_ready(app, timeout)
    return app


def start_agents_app(app_id: str, module: str, **kwargs) -> DaprApp:
    """Start a module that hosts agents: its ACTORS, and its workflows if it has
    a ``wfr``. The same host as start_workflow_app, named for what it runs."""
    return start_workflow_app(app_id, module, **kwargs)


def wait_ready(app: DaprApp, timeout: float = 90.0) -> None:
    """Wait until the app's workflow worker is connected to its sidecar."""

    def ready() -> bool:
        status = http_status(f"{app.app_url}/workflows/ready")
        if status == 500:
            reason = sidecar.client().get(f"{app.app_url}/workflows/ready", timeout=5).text  # the app's own route
            raise LabEnvError(f"{app.app_id}: the workflow worker did not start: {reason}", f"see {app.app_log}")
        return status == 204

    def died() -> str | None:
        return None if app.alive() else "the app or its sidecar exited"

    wait_all(
        {f"{app.app_id} workflow worker": Waiting(ready, failed=died, fix=f"see {app.app_log}")},
        timeout,
        app.app_id,
        progress=False,
    )


def restart(app: DaprApp, timeout: float = 90.0) -> None:
    """Start a crashed (or running) workflow app again and wait for its worker."""
    app.restart(timeout)
    wait_ready(app, timeout)


_TOKEN_LOCK = threading.Lock()


def client(app: DaprApp):
    """A DaprWorkflowClient talking to ``app``'s sidecar (with its API token, if it requires one)."""
    import logging

    from dapr.conf import settings
    from dapr.ext.workflow import DaprWorkflowClient
    from dapr.ext.workflow.logger import LoggerOptions

    # The SDK's clients log to stderr through handlers of their own: "Transient gRPC error
    # ... retrying" (WARNING, durabletask-client) and, for every RpcError get_workflow_state
    # sees, "Unhandled RPC error while fetching workflow state" (ERROR, DaprWorkflowClient),
    # the torn reads read_state retries included. That noise landed in check cells (lab 04's
    # monitor polls an instance that continues as new every 0.2 s). These helpers retry what
    # is transient and say what went wrong in one line themselves, so the SDK's loggers say
    # nothing. The SDK adds handlers but never sets these loggers' levels: this holds.
    for name in _SDK_LOGGERS:
        logging.getLogger(name).setLevel(_SILENT)
    # durabletask appends the client's handler to "durabletask-client" on every client it
    # builds (one more per read_state, unbounded): give it one to append, then take it back.
    sink = logging.NullHandler()
    # The client reads the token from the SDK's settings when it is built: set it for this one.
    with _TOKEN_LOCK:
        before = getattr(settings, "DAPR_API_TOKEN", None)  # Settings is untyped: filled from the environment
        settings.DAPR_API_TOKEN = app.api_token  # type: ignore[attr-defined]  # the SDK leaves Settings untyped
        try:
            wf_client = DaprWorkflowClient(
                host="127.0.0.1", port=str(app.grpc_port), logger_options=LoggerOptions(log_handler=sink)
            )
        finally:
            settings.DAPR_API_TOKEN = before  # type: ignore[attr-defined]
            logging.getLogger("durabletask-client").removeHandler(sink)
    return wf_client


_SDK_LOGGERS = ("DaprWorkflowClient", "durabletask-client")
_SILENT = 100  # above CRITICAL: these loggers log nothing at all


# -- instances -------------------------------------------------------------


def wait(app: DaprApp, instance_id: str, timeout: float = 120.0, *, raise_failed: bool = True):
    """Wait until the instance ends; return its WorkflowState.

    A FAILED instance raises WorkflowFailed (one line) unless ``raise_failed``
    is False. ``timeout`` is a safety net against a workflow that never ends.
    """
    import grpc

    deadline = time.monotonic() + timeout
    wf_client = client(app)
    try:
        while True:
            left = max(1, int(deadline - time.monotonic()))
            try:
                wf_client.wait_for_workflow_completion(instance_id, timeout_in_seconds=left, fetch_payloads=False)
                break
            except TimeoutError:
                raise LabEnvError(
                    f"workflow {instance_id} did not finish within {timeout:.0f} s (it is {status(app, instance_id)})",
                    "look at its custom status and history: is it waiting for an event that never comes?",
                ) from None
            except grpc.RpcError as err:
                if time.monotonic() >= deadline - 0.5:
                    # The wait ran out: on a busy machine the sidecar may end the stream at
                    # the deadline (RST_STREAM, CANCELLED) before the client's DEADLINE_EXCEEDED.
                    raise LabEnvError(
                        f"workflow {instance_id} did not finish within {timeout:.0f} s "
                        f"(it is {status(app, instance_id)})",
                        "look at its custom status and history: is it waiting for an event that never comes?",
                    ) from None
                transient = _TORN_READ in (err.details() or "") or err.code() == grpc.StatusCode.CANCELLED
                if not transient or not app.alive():
                    raise LabEnvError(
                        f"{app.app_id}'s sidecar stopped waiting for workflow {instance_id}: {err.details()}",
                        "is the app running? `app.alive()`; restart it with workflows.restart(app)",
                    ) from None
                time.sleep(0.05)  # a torn read while the instance saved, or a reset stream: wait again
    finally:
        wf_client.close()
    state = read_state(app, instance_id)
    if state is None:
        raise LabEnvError(f"no workflow instance {instance_id!r} in {app.app_id}", "check the instance id")
    if raise_failed and state.runtime_status.name == "FAILED":
        raise failure(state)
    return state


def wait_for(app: DaprApp, instance_id: str, predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait until ``predicate()`` holds while the instance runs (a step has
    started, a status was reported). If the instance ends first, say so in
    one line at once (with its error if it failed) instead of waiting out
    ``timeout``."""

    def probe() -> bool:
        if predicate():
            return True
        now = status(app, instance_id)
        if now in TERMINAL:
            if now == "FAILED":
                wait(app, instance_id)  # raises WorkflowFailed with the workflow's own error
            raise LabEnvError(f"workflow {instance_id} ended ({now}) before {what}", "look at its output and history")
        return False

    wait_all(
        {what: Waiting(probe, fix="look at the workflow's custom status and the app's log")},
        timeout,
        what,
        progress=False,
    )


def failure(state) -> WorkflowFailed:
    details = state.failure_details
    return WorkflowFailed(
        state.instance_id,
        state.name,
        getattr(details, "error_type", "") or "Error",
        (getattr(details, "message", "") or "").strip().splitlines()[0] if details else "",
    )


def output(state):
    """The instance's output, decoded from JSON."""
    return json.loads(state.serialized_output) if state.serialized_output else None


# daprd 1.18.2 reads an instance's metadata and then its inbox and history
# keys without a transaction; a read that lands while the instance is saving
# (continue_as_new, say) can find a key missing and fails with this message.
# It is harmless and gone on the next read.
_TORN_READ = "missing from state store"


def read_state(app: DaprApp, instance_id: str, *, fetch_payloads: bool = True, attempts: int = 20):
    """The instance's WorkflowState (None if there is no such instance).

    Retries the sidecar's torn reads (see _TORN_READ); any other error of
    the sidecar becomes one LabEnvError line."""
    import grpc

    wf_client = client(app)
    try:
        for attempt in range(attempts):
            try:
                return wf_client.get_workflow_state(instance_id, fetch_payloads=fetch_payloads)
            except grpc.RpcError as err:
                details = err.details() if hasattr(err, "details") else str(err)
                if _TORN_READ in (details or "") and attempt < attempts - 1:
                    time.sleep(0.05)
                    continue
                raise LabEnvError(
                    f"{app.app_id}'s sidecar could not read workflow {instance_id}: {details}",
                    "is the app running? `app.alive()`; restart it with workflows.restart(app)",
                ) from None
    finally:
        wf_client.close()


def status(app: DaprApp, instance_id: str) -> str:
    """RUNNING, COMPLETED, FAILED, TERMINATED, PENDING, SUSPENDED, or "missing"."""
    state = read_state(app, instance_id, fetch_payloads=False)
    return state.runtime_status.name if state else "missing"


def custom_status(app: DaprApp, instance_id: str):
    state = read_state(app, instance_id)
    if state is None or not state.serialized_custom_status:
        return None
    return json.loads(state.serialized_custom_status)


def _sidecar_stub(app: DaprApp):
    import grpc
    from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as service

    channel = grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    return channel, service.TaskHubSidecarServiceStub(channel)


def _grpc_metadata(app: DaprApp) -> tuple:
    return tuple(app.api_headers().items())


def list_instances(app: DaprApp) -> list[str]:
    """Ids of every workflow instance the app's state store holds."""
    from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2 as pb

    channel, stub = _sidecar_stub(app)
    ids: list[str] = []
    token = None
    try:
        while True:
            reply = stub.ListInstanceIDs(
                pb.ListInstanceIDsRequest(pageSize=500, continuationToken=token),
                timeout=30,
                metadata=_grpc_metadata(app),
            )
            ids.extend(reply.instanceIds)
            if not reply.HasField("continuationToken") or not reply.continuationToken:
                return ids
            token = reply.continuationToken
    finally:
        channel.close()


@dataclass(frozen=True)
class HistoryEvent:
    """One event of an instance's history, as the engine stored it."""

    event_id: int
    kind: str  # ExecutionStarted, TaskScheduled, TaskCompleted, TimerCreated, EventRaised, ...
    name: str  # the activity, timer or event it is about, when it has one
    at: datetime

    def __str__(self) -> str:
        return f"{self.event_id:>3}  {self.at:%H:%M:%S.%f}"[:-3] + f"  {self.kind:<24} {self.name}"


def history(app: DaprApp, instance_id: str) -> list[HistoryEvent]:
    """The event history the sidecar keeps for an instance: replaying it
    rebuilds the workflow's state after any crash."""
    from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2 as pb

    channel, stub = _sidecar_stub(app)
    try:
        reply = stub.GetInstanceHistory(
            pb.GetInstanceHistoryRequest(instanceId=instance_id), timeout=30, metadata=_grpc_metadata(app)
        )
    finally:
        channel.close()
    events = []
    for event in reply.events:
        kind = event.WhichOneof("eventType") or "unknown"
        body = getattr(event, kind) if kind != "unknown" else None
        name = getattr(body, "name", "") if body is not None else ""
        if body is not None and kind in ("taskCompleted", "taskFailed"):
            name = f"for task {body.taskScheduledId}"
        events.append(
            HistoryEvent(event.eventId, kind[0].upper() + kind[1:], name, event.timestamp.ToDatetime(tzinfo=UTC))
        )
    return events


def scheduled_names(events: Sequence[HistoryEvent]) -> dict[int, str]:
    """Map task ids to activity names, to label TaskCompleted events."""
    return {e.event_id: e.name for e in events if e.kind == "TaskScheduled"}


def stored_keys(app: DaprApp, instance_id: str) -> list[str]:
    """The state store (Redis) keys that hold an instance: its metadata, one
    key per history event, its inbox, and its activities' own actors."""
    from lab_env.core.profile import current

    prof = current()
    keys: list[str] = []
    with _Redis(prof.redis_host, prof.redis_port) as redis:
        cursor = "0"
        while True:
            cursor, found = redis.command("SCAN", cursor, "MATCH", f"{app.app_id}||*{instance_id}*", "COUNT", "1000")
            keys.extend(found)
            if cursor == "0":
                return keys


class _Redis:
    """Just enough of the Redis protocol (RESP2) to scan keys, without a client library."""

    def __init__(self, host: str, port: int) -> None:
        import socket

        self.sock = socket.create_connection((host, port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> _Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.sock.close()

    def command(self, *parts: str):
        payload = f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
        self.sock.sendall(payload.encode())
        return self._reply()

    def _reply(self):
        line = self.reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"-":
            raise LabEnvError(f"Redis answered: {rest}", "run `lab-env status`")
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.reader.read(int(rest) + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise LabEnvError(f"unexpected reply from Redis: {line[:40]!r}")


# -- the ledger ------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    seq: int
    key: str  # usually the workflow instance id
    step: str
    event: str  # started, done, effect, skipped, ...
    detail: object
    at: float
    pid: int


class Ledger:
    """An append-only record of what activities did, in a SQLite file.

    Every write commits at once, so the file holds everything written before
    a SIGKILL. ``apply_once(effect)`` makes an external effect idempotent:
    only its first caller gets True.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with self._db() as db:
            db.executescript(
                "PRAGMA journal_mode=WAL;"
                "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, step TEXT,"
                " event TEXT, detail TEXT, at REAL, pid INTEGER);"
                "CREATE TABLE IF NOT EXISTS effects (effect TEXT PRIMARY KEY, at REAL);"
                "CREATE TABLE IF NOT EXISTS gates (gate TEXT PRIMARY KEY);"
                "CREATE TABLE IF NOT EXISTS held (gate TEXT PRIMARY KEY);"
            )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def append(self, key: str, step: str, event: str, detail: object = None) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO entries (key, step, event, detail, at, pid) VALUES (?, ?, ?, ?, ?, ?)",
                (key, step, event, json.dumps(detail), time.time(), os.getpid()),
            )

    def apply_once(self, effect: str) -> bool:
        """Claim ``effect``: True the first time, False for every repeat."""
        with self._db() as db:
            return (
                db.execute("INSERT OR IGNORE INTO effects (effect, at) VALUES (?, ?)", (effect, time.time())).rowcount
                == 1
            )

    def effect_once(self, key: str, step: str, detail: object = None) -> bool:
        """Apply a step's effect (an ``effect`` row) once per key and step.

        The claim and the effect are one SQLite transaction: a process killed
        between "I did it" and "I remember doing it" would otherwise either
        lose the effect or apply it twice on the re-run. True if applied now.
        """
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            claimed = (
                db.execute(
                    "INSERT OR IGNORE INTO effects (effect, at) VALUES (?, ?)", (f"{key}:{step}", time.time())
                ).rowcount
                == 1
            )
            if claimed:
                db.execute(
                    "INSERT INTO entries (key, step, event, detail, at, pid) VALUES (?, ?, ?, ?, ?, ?)",
                    (key, step, "effect", json.dumps(detail), time.time(), os.getpid()),
                )
            db.execute("COMMIT")
            return claimed

    def rows(self, key: str | None = None) -> list[LedgerRow]:
        with self._db() as db:
            query = "SELECT seq, key, step, event, detail, at, pid FROM entries"
            found = (
                db.execute(query + " WHERE key = ? ORDER BY seq", (key,))
                if key is not None
                else db.execute(query + " ORDER BY seq")
            )
            return [
                LedgerRow(seq, k, step, event, json.loads(detail), at, pid)
                for seq, k, step, event, detail, at, pid in found
            ]

    def count(self, key: str, step: str, event: str) -> int:
        with self._db() as db:
            return db.execute(
                "SELECT COUNT(*) FROM entries WHERE key = ? AND step = ? AND event = ?", (key, step, event)
            ).fetchone()[0]

    def effects(self, prefix: str = "") -> list[str]:
        with self._db() as db:
            return [
                e
                for (e,) in db.execute(
                    "SELECT effect FROM effects WHERE effect LIKE ? ORDER BY at", (prefix.replace("%", r"\%") + "%",)
                )
            ]

    # A gate lets a notebook hold an activity at a known point (to crash the
    # host while it runs) and release it later.
    def open_gate(self, gate: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO gates (gate) VALUES (?)", (gate,))

    def gate_open(self, gate: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM gates WHERE gate = ?", (gate,)).fetchone() is not None

    def wait_at_gate(self, gate: str, poll: float = 0.05) -> None:
        """Block (in an activity) until the notebook opens ``gate``; ``held``
        tells the notebook that something is waiting there."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO held (gate) VALUES (?)", (gate,))
        # No deadline: the gate stays shut until the notebook opens it (or the host is killed).
        wait_until(lambda: self.gate_open(gate), math.inf, f"gate {gate}", interval=poll)

    def held(self, gate: str) -> bool:
        """True once an activity has reached ``gate`` (it may still be waiting)."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM held WHERE gate = ?", (gate,)).fetchone() is not None


def ledger(app: DaprApp | None = None) -> Ledger:
    """The ledger of ``app`` (from the notebook), or of this process (inside an app)."""
    path = app.env.get("LAB_LEDGER") if app is not None else os.environ.get("LAB_LEDGER")
    if not path:
        raise LabEnvError("this app has no ledger", "start it with lab_env.runtime.workflows.start_workflow_app")
    return Ledger(path)
