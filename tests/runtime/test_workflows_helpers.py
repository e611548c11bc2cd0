"""lab_env.runtime.workflows against the real runtime: a module's workflows run in an
app beside daprd, and the notebook-side helpers (wait, wait_for, history,
list_instances, stored_keys) read what the sidecar and Redis hold. Failures
come back as one line, never as a gRPC traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab_env import stop_app, unique_name
from lab_env.errors import LabEnvError
from lab_env.runtime import workflows
from lab_env.runtime.workflows import Ledger, WorkflowFailed, output

OTHER_UID = 49999  # no user of this machine (the sandboxes use 50000 and up)

MODULE = """
import dapr.ext.workflow as wf

wfr = wf.WorkflowRuntime()


@wfr.activity(name="double")
def double(ctx, n: int) -> int:
    if n < 0:
        raise ValueError(f"cannot double {n}")
    return 2 * n


@wfr.workflow(name="twice")
def twice(ctx: wf.DaprWorkflowContext, n: int):
    return (yield ctx.call_activity(double, input=n))


@wfr.workflow(name="forever")
def forever(ctx: wf.DaprWorkflowContext, _):
    yield ctx.wait_for_external_event("never")
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wf")
    (folder / "tiny_workflows.py").write_text(MODULE)
    started = workflows.start_workflow_app(unique_name("t-wf"), "tiny_workflows", cwd=folder)
    yield started
    stop_app(started)


def _schedule(app, name: str, data: object) -> str:
    wf_client = workflows.client(app)
    try:
        return wf_client.schedule_new_workflow(name, input=data)
    finally:
        wf_client.close()


@pytest.mark.stack
def test_history_list_keys_and_purge(app):
    instance = _schedule(app, "twice", 21)
    assert output(workflows.wait(app, instance)) == 42
    events = workflows.history(app, instance)
    kinds = [e.kind for e in events if e.kind != "WorkflowStarted"]
    assert kinds == ["ExecutionStarted", "TaskScheduled", "TaskCompleted", "ExecutionCompleted"], kinds
    assert [e.name for e in events if e.kind == "TaskScheduled"] == ["double"]
    assert instance in workflows.list_instances(app)
    keys = workflows.stored_keys(app, instance)
    assert any(k.endswith("||metadata") for k in keys) and any("||history-" in k for k in keys), keys
    wf_client = workflows.client(app)
    wf_client.purge_workflow(instance)
    wf_client.close()
    assert workflows.stored_keys(app, instance) == []
    assert workflows.status(app, instance) == "missing"


@pytest.mark.stack
def test_a_failed_workflow_is_one_line(app):
    instance = _schedule(app, "twice", -1)
    with pytest.raises(WorkflowFailed) as failed:
        workflows.wait(app, instance)
    assert "cannot double -1" in str(failed.value) and "\n" not in str(failed.value)
    assert failed.value._render_traceback_() == [f"\u274c {failed.value}"]
    state = workflows.wait(app, instance, raise_failed=False)
    assert state.runtime_status.name == "FAILED"


@pytest.mark.stack
def test_wait_for_stops_as_soon_as_the_instance_fails(app):
    instance = _schedule(app, "twice", -5)
    # The predicate never holds: without the failure the wait would last 300 s
    # and end in a "not ready" LabEnvError instead.
    with pytest.raises(WorkflowFailed, match="cannot double -5"):
        workflows.wait_for(app, instance, lambda: False, "something that never happens", timeout=300)


@pytest.mark.stack
def test_wait_names_the_status_when_it_gives_up(app):
    instance = _schedule(app, "forever", None)
    with pytest.raises(LabEnvError, match=r"did not finish within 1 s \(it is RUNNING\)"):
        workflows.wait(app, instance, timeout=1)
    wf_client = workflows.client(app)
    wf_client.terminate_workflow(instance)
    wf_client.close()
    assert workflows.wait(app, instance).runtime_status.name == "TERMINATED"


@pytest.mark.stack
def test_a_module_without_a_runtime_is_reported(tmp_path):
    (tmp_path / "no_runtime.py").write_text("X = 1\n")
    with pytest.raises(LabEnvError, match="no_runtime defines no `wfr = wf.WorkflowRuntime\\(\\)`"):
        workflows.start_workflow_app(unique_name("t-nowfr"), "no_runtime", cwd=tmp_path)


def test_ledger_claims_an_effect_once_and_keeps_rows_in_order(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    assert ledger.apply_once("o-1:charge") is True
    assert ledger.apply_once("o-1:charge") is False
    ledger.append("o-1", "charge", "started")
    ledger.append("o-1", "charge", "done", {"amount": 3})
    ledger.append("o-2", "charge", "started")
    again = Ledger(tmp_path / "l.sqlite")  # another process opening the same file
    assert [(r.step, r.event, r.detail) for r in again.rows("o-1")] == [
        ("charge", "started", None),
        ("charge", "done", {"amount": 3}),
    ]
    assert again.count("o-2", "charge", "started") == 1
    assert again.effects("o-1") == ["o-1:charge"]
    with again.transaction() as tx:  # a claim and a row, one commit
        assert tx.claim("o-1:ship") is True and tx.claim("o-1:ship") is False
        tx.append("o-1", "ship", "effect", {"parcel": 1})
    with pytest.raises(RuntimeError), again.transaction() as tx:  # an error: neither is kept
        tx.claim("o-1:pack")
        tx.append("o-1", "pack", "effect")
        raise RuntimeError("the activity failed")
    assert [r.detail for r in again.rows("o-1") if r.event == "effect"] == [{"parcel": 1}]
    assert again.effects("o-1:pack") == []
    assert not again.gate_open("g") and not again.held("g")
    ledger.open_gate("g")
    again.wait_at_gate("g")  # returns at once: the gate is open
    assert ledger.held("g")


def test_an_app_without_a_ledger_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("LAB_LEDGER", raising=False)
    with pytest.raises(LabEnvError, match="start_workflow_app"):
        workflows.ledger()


def test_an_armed_crash_kills_the_activity_after_its_first_write_past_started(tmp_path):
    """arm_crash(key, step): the activity's process dies right after its next commit past "started",
    once; the re-run goes through. A real process, really SIGKILLed."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "l.sqlite"
    Ledger(path).arm_crash("o-1", "charge")
    activity = (
        "import sys\nfrom lab_env.runtime.workflows import Ledger\n"
        "ledger = Ledger(sys.argv[1])\n"
        "ledger.append('o-1', 'charge', 'started')\n"
        "ledger.apply_once('o-1:charge')\n"
        "ledger.append('o-1', 'charge', 'effect')\n"
    )
    first = subprocess.run([sys.executable, "-c", activity, str(path)], capture_output=True, timeout=60)
    assert first.returncode == -signal.SIGKILL, first.stderr
    ledger = Ledger(path)
    assert ledger.crashed("o-1", "charge") and ledger.effects("o-1") == ["o-1:charge"]
    assert ledger.count("o-1", "charge", "effect") == 0  # the claim was saved, the effect row never was
    again = subprocess.run([sys.executable, "-c", activity, str(path)], capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert ledger.count("o-1", "charge", "effect") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write as another uid, as the sandboxed grader does")
def test_an_app_of_another_uid_writes_while_root_reads_the_ledger():
    """The sandboxed grader (root) polls an app's ledger while the app (the sandbox's uid) writes to it:
    no write of the app may fail because root opened the file at the same moment."""
    folder = Path(tempfile.mkdtemp(prefix="ledger-uid-"))
    try:
        os.chmod(folder, 0o755)
        os.chown(folder, OTHER_UID, OTHER_UID)
        path = folder / "l.sqlite"
        writer = (
            "import sys\nfrom lab_env.runtime.workflows import Ledger\n"
            "ledger = Ledger(sys.argv[1])\n"
            "for i in range(300):\n    ledger.append('o-1', 'charge', 'started', i)\n"
            "ledger.open_gate('done')\n"
        )
        # As the sandbox's uid; allowed to read this machine's Python (under /root), nothing more.
        as_other = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"]
        as_other += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        app = subprocess.Popen(
            [*as_other, sys.executable, "-c", writer, str(path)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        polls = 0
        while app.poll() is None:
            if path.exists():
                Ledger(path).held("anything")
                polls += 1
        assert app.returncode == 0, app.stderr.read()[-600:]
        assert polls > 0 and Ledger(path).gate_open("done")
        assert Ledger(path).count("o-1", "charge", "started") == 300
    finally:
        shutil.rmtree(folder)
