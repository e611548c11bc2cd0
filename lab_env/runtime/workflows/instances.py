"""The workflow client of one app's sidecar: start, wait, read state and status of instances."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from lab_env.core.probes import Waiting, wait_all
from lab_env.errors import LabEnvError
from lab_env.runtime.apps import DaprApp

TERMINAL = ("COMPLETED", "FAILED", "TERMINATED")


class WorkflowFailed(LabEnvError):
    """A workflow instance ended FAILED. ``str()`` is one line: which workflow,
    and the error its code (or an activity's) raised."""

    def __init__(self, instance_id: str, name: str, error_type: str, message: str) -> None:
        self.instance_id, self.name, self.error_type, self.message = instance_id, name, error_type, message
        super().__init__(f"workflow {name} ({instance_id}) failed: {error_type}: {message}")


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
    try:
        return json.loads(state.serialized_custom_status)
    except ValueError:
        return state.serialized_custom_status  # the SDK stores a plain string status as it is
