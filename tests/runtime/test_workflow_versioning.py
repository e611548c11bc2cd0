"""Lab 04's versioning claims on the real runtime, with the module its notebook writes (gift_wrap.py):
an instance started under v1 fails when v2_naive replays it, completes under v2_patched without the new step,
and an instance started under v2_patched takes the new step and keeps taking it on every replay."""

from __future__ import annotations

import pytest

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.runtime import workflows
from lab_env.runtime.apps import stop_app, unique_name
from lab_env.runtime.workflows import WorkflowFailed, output, start_workflow_app
from tests.grading.solution_mutations import written

pytestmark = pytest.mark.stack

WAITING = "waiting for the buyer to collect"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return written(tmp_path_factory.mktemp("gifts"), SOLUTIONS_DIR / "04_workflows.ipynb", "gift_wrap.py").parent


def _deploy(folder, app_id: str, version: str):
    return start_workflow_app(app_id, "gift_wrap", cwd=folder, env={"GIFT_WRAP_VERSION": version})


def _start_and_wait_for_buyer(app, item: str) -> str:
    instance = workflows.client(app).schedule_new_workflow("gift_order", input=item)
    workflows.wait_for(app, instance, lambda: workflows.custom_status(app, instance) == WAITING, f"{item} to wait")
    return instance


def _collect(app, instance: str):
    workflows.client(app).raise_workflow_event(instance, "collected")
    return workflows.wait(app, instance)


def test_a_naive_change_fails_the_old_instance_and_a_patch_lets_it_finish(folder):
    app_id = unique_name("t-gifts")
    app = _deploy(folder, app_id, "v1")
    try:
        mug, kite = (_start_and_wait_for_buyer(app, item) for item in ("mug", "kite"))
        app = _deploy(folder, app_id, "v2_naive")
        with pytest.raises(WorkflowFailed) as failed:
            _collect(app, mug)
        assert failed.value.error_type == "NonDeterminismError", failed.value
        app = _deploy(folder, app_id, "v2_patched")
        assert output(_collect(app, kite)) == ["picked kite", "charged kite", "shipped kite"]
        vase = _start_and_wait_for_buyer(app, "vase")  # replayed after each step: the patch must be remembered
        assert output(_collect(app, vase)) == ["picked vase", "wrapped vase", "charged vase", "shipped vase"]
    finally:
        stop_app(app)
