"""What the workflow engine stored: instances, their history events and their state keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lab_env.errors import LabEnvError
from lab_env.runtime.apps import DaprApp


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
