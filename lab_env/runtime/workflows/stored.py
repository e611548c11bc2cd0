"""What the workflow engine stored: instances, their history events and their state keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lab_env.core.resp import RedisConnection
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
    with RedisConnection(prof.redis_host, prof.redis_port) as redis:
        return list(redis.scan(f"{app.app_id}||*{instance_id}*"))
