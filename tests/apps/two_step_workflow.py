"""A two-activity Dapr workflow, for the stack tests.

POST /start/{instance_id} with a JSON number schedules it; the workflow
doubles the number, then adds one, and returns the result.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import dapr.ext.workflow as wf
from fastapi import FastAPI

runtime = wf.WorkflowRuntime()


@runtime.activity(name="double")
def double(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n * 2


@runtime.activity(name="add_one")
def add_one(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n + 1


@runtime.workflow(name="double_then_add_one")
def double_then_add_one(ctx: wf.DaprWorkflowContext, n: int):
    doubled = yield ctx.call_activity(double, input=n)
    result = yield ctx.call_activity(add_one, input=doubled)
    return result


@asynccontextmanager
async def lifespan(app: FastAPI):
    runtime.start()
    yield
    runtime.shutdown()


app = FastAPI(lifespan=lifespan)


@app.post("/start/{instance_id}")
def start(instance_id: str, n: int) -> dict[str, str]:
    client = wf.DaprWorkflowClient()
    client.schedule_new_workflow(double_then_add_one, input=n, instance_id=instance_id)
    return {"instance_id": instance_id}


@app.get("/result/{instance_id}")
def result(instance_id: str) -> dict[str, object]:
    state = wf.DaprWorkflowClient().get_workflow_state(instance_id, fetch_payloads=True)
    if state is None:
        return {"status": "UNKNOWN"}
    return {"status": state.runtime_status.name, "output": state.serialized_output}
