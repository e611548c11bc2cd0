"""No check cell writes to stderr.

nbval (--nbval-lax) compares only the cells tagged nbval-check-output, and a
check cell's reference output is one stdout line, its verdict: anything the
cell writes to stderr fails it with "Unexpected output fields from running
code: {'stderr'}", without saying what was written. That happened, now and
then, in lab 04's monitor check: the Dapr workflow SDK logs every RpcError
get_workflow_state sees at ERROR ("Unhandled RPC error while fetching
workflow state"), the torn reads lab_env.runtime.workflows.read_state retries
included, through a StreamHandler of its own. These tests hold that down:

- every check cell's saved reference has no stderr (else nbval would demand it);
- the workflow client lab_env builds logs nothing from any SDK error path the
  checks go through, and leaves no handler behind (no stack needed);
- the monitor check itself, run against the solution's app, writes nothing
  to stderr (fd 2 included: logging, warnings, gRPC's C core, a child process).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import grpc
import nbformat
import pytest

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.runtime import workflows

SDK_LOGGERS = ("DaprWorkflowClient", "durabletask-client")
CHECK_TAG = "nbval-check-output"


def _check_cells() -> list[tuple[str, nbformat.NotebookNode]]:
    found = []
    for path in sorted(SOLUTIONS_DIR.glob("*.ipynb")):
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        found += [(f"{path.name}::Cell {n}", c) for n, c in enumerate(code) if CHECK_TAG in c.metadata.get("tags", [])]
    return found


def test_every_check_cells_reference_is_its_verdict_on_stdout_only():
    cells = _check_cells()
    assert cells, f"no cell tagged {CHECK_TAG} in {SOLUTIONS_DIR}"
    wrong = [
        f"{where}: {[o.get('name', o.output_type) for o in cell.outputs]}"
        for where, cell in cells
        if [(o.output_type, o.get("name")) for o in cell.outputs] != [("stream", "stdout")]
    ]
    assert wrong == [], "check cells whose saved output is not one stdout stream (nbval compares these)"


class _Collect(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return True


@pytest.fixture
def sdk_records():
    """Every record the SDK's client loggers let through, whichever handler (the SDK's
    own StreamHandlers, bound to whatever sys.stderr was when they were made) gets it.
    A filter, not a handler: the SDK adds its StreamHandler only to a logger without one."""
    collect = _Collect()
    for name in SDK_LOGGERS:
        logging.getLogger(name).addFilter(collect)
    yield collect.records
    for name in SDK_LOGGERS:
        logging.getLogger(name).removeFilter(collect)


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class _Sidecar:
    """Stands in for the SDK's gRPC stub: the sidecar's answers under load, no network."""

    def __init__(self, channel) -> None:
        self.reads = 0
        self.waits = 0

    def GetInstance(self, request, **_):
        self.reads += 1
        if self.reads <= 2:  # daprd 1.18's torn read while an instance continues as new
            raise _RpcError(
                grpc.StatusCode.UNKNOWN, f"key '{request.instanceId}||history-000001' {workflows._TORN_READ}"
            )
        raise _RpcError(grpc.StatusCode.UNKNOWN, "no such instance exists")

    def WaitForInstanceCompletion(self, request, **_):
        from dapr.ext.workflow._durabletask.internal import protos as pb

        self.waits += 1
        if self.waits == 1:  # the SDK retries it after "Transient gRPC error ... retrying"
            raise _RpcError(grpc.StatusCode.UNAVAILABLE, "placement not ready")
        return pb.GetInstanceResponse(exists=False)

    def StartInstance(self, request, **_):
        from dapr.ext.workflow._durabletask.internal import protos as pb

        return pb.CreateInstanceResponse(instanceId=request.instanceId)

    def TerminateInstance(self, request, **_):
        return None


def test_workflow_clients_log_nothing_from_the_sdk_and_keep_no_handlers(monkeypatch, capfd, sdk_records):
    from dapr.ext.workflow._durabletask import client as durabletask_client

    monkeypatch.setattr(durabletask_client.stubs, "TaskHubSidecarServiceStub", _Sidecar)
    app = SimpleNamespace(app_id="t-quiet", grpc_port=1, api_token=None)  # nothing listens: the stub answers
    workflows.client(app).close()  # the process's first client may give a logger its one handler
    handlers = {name: len(logging.getLogger(name).handlers) for name in SDK_LOGGERS}

    assert workflows.status(app, "i-1") == "missing"  # two torn reads retried, then "no such instance"
    wf_client = workflows.client(app)
    try:
        wf_client.schedule_new_workflow("w", instance_id="i-2")
        wf_client.wait_for_workflow_completion("i-2", timeout_in_seconds=5)  # one transient error retried
        wf_client.terminate_workflow("i-2")
    finally:
        wf_client.close()
    for _ in range(20):
        workflows.client(app).close()

    assert [f"{r.name} {r.levelname}: {r.getMessage()}" for r in sdk_records] == []
    assert capfd.readouterr().err == ""
    assert {name: len(logging.getLogger(name).handlers) for name in SDK_LOGGERS} == handlers, (
        "building a client left a handler on the SDK's loggers"
    )


@pytest.mark.stack
def test_the_monitor_check_writes_nothing_to_stderr(start, capfd, sdk_records):
    """The check that failed nbval now and then, run as the grader runs it: it polls an
    instance that continues as new every 0.2 s, the window of daprd's torn reads."""
    from lab_env.labs.checks import verdict
    from lab_env.labs.lab04_workflows import checks as lab04
    from tests.grading.solution_mutations import mutated

    app = start("stock_monitor", mutated(SOLUTIONS_DIR / "04_workflows.ipynb", "stock_monitor.py"))
    capfd.readouterr()  # the app's start is a cell of its own in the lab
    for _ in range(3):
        result = verdict(lab04.monitor, app)
        assert result.passed, result.message
    assert [f"{r.name} {r.levelname}: {r.getMessage()}" for r in sdk_records] == []
    assert capfd.readouterr().err == ""
