"""Run and watch Dapr workflows from a notebook, a check or a bench.

    orders = start_workflow_app(unique_name("orders"), "order_workflow")
    wf_client = client(orders)
    instance = wf_client.schedule_new_workflow("order_workflow", input={...})
    state = wait(orders, instance)            # one clear line if it failed
    for event in history(orders, instance):   # what the engine stored
        ...

The workflows run in an app process (``host``) beside its own daprd; the
notebook is only a client of that sidecar (``instances``). ``hosting`` starts and
restarts that process, ``stored`` reads what the engine stored, and the
activities record what they do in an ``activity_ledger`` that survives a SIGKILL.
"""

from lab_env.runtime.workflows.activity_ledger import Ledger, LedgerRow, ledger
from lab_env.runtime.workflows.hosting import HOST_MODULE, restart, start_agents_app, start_workflow_app, wait_ready
from lab_env.runtime.workflows.instances import (
    _TORN_READ,
    TERMINAL,
    WorkflowFailed,
    client,
    custom_status,
    failure,
    output,
    read_state,
    status,
    wait,
    wait_for,
)
from lab_env.runtime.workflows.stored import HistoryEvent, history, list_instances, scheduled_names, stored_keys

__all__ = [
    "HOST_MODULE",
    "TERMINAL",
    "_TORN_READ",
    "HistoryEvent",
    "Ledger",
    "LedgerRow",
    "WorkflowFailed",
    "client",
    "custom_status",
    "failure",
    "history",
    "ledger",
    "list_instances",
    "output",
    "read_state",
    "restart",
    "scheduled_names",
    "start_agents_app",
    "start_workflow_app",
    "status",
    "stored_keys",
    "wait",
    "wait_for",
    "wait_ready",
]
