"""Checks for lab 04: durable workflows.

Every check schedules fresh instances of the learner's workflows in the app
that hosts them and judges what the engine and the ledger recorded: the
instance's status and output, its event history, the ledger's rows and the
actors' state. Nothing comes from the notebook's variables, so the grader
runs the same checks from its own process with the app's handle.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lab_env.labs.checks import check, fresh
from lab_env.runtime import workflows
from lab_env.runtime.actors import actor_type_in, invoke
from lab_env.runtime.apps import DaprApp, stop_app
from lab_env.runtime.workflows import Ledger, output

# Safety nets against a workflow that never ends. A right answer finishes in
# a second or two; these only stop a wrong one from hanging the cell.
PATIENCE = 120.0
ORDER_STEPS = ["validate", "reserve", "pack", "charge", "ship"]
RESEARCH_ANALYSES = ["demand", "competitor_prices", "reviews", "seasonality"]


def _run(app: DaprApp, workflow: str, data: object, kind: str):
    """Schedule ``workflow`` with ``data``, wait for it; return (instance id, output)."""
    wf_client = workflows.client(app)
    try:
        instance = wf_client.schedule_new_workflow(workflow, input=data, instance_id=fresh(f"check-{kind}"))
    finally:
        wf_client.close()
    return instance, output(workflows.wait(app, instance, PATIENCE))


def _started(ledger: Ledger, instance: str) -> list[str]:
    return [row.step for row in ledger.rows(instance) if row.event == "started"]


@check(
    "order workflow",
    hint="for each step in STEPS: ctx.set_custom_status(...), then "
    "result = yield ctx.call_activity(step, input=order); return the steps done",
)
def order_workflow(app: DaprApp) -> str:
    instance, result = _run(app, "order_workflow", {"id": fresh("check-order"), "quantity": 1}, "order")
    started = _started(workflows.ledger(app), instance)
    assert started == ORDER_STEPS, f"the activities ran as {started}, expected {ORDER_STEPS} once each, in order"
    assert isinstance(result, dict) and result.get("steps") == ORDER_STEPS, (
        f"the workflow returned {result!r}; return {{'order': order['id'], 'steps': [...the steps done...]}}"
    )
    final = workflows.custom_status(app, instance)
    assert isinstance(final, dict) and final.get("done") == len(ORDER_STEPS), (
        f"the last custom status is {final!r}; it should count {len(ORDER_STEPS)} steps done"
    )
    return "5 activities in order, custom status and output"


@check(
    "crash and resume",
    hint="claim each effect under a name that is the same on every attempt, and save the claim and the "
    "effect row in one LEDGER.transaction(): a crash between two separate writes loses the effect or doubles it",
)
def crash_resume(app: DaprApp) -> str:
    """Kill the whole host (app and sidecar) while step 3 runs, restart it, let it finish; then kill
    the app right after step 4's first write past "started", restart it, let it finish."""
    ledger = workflows.ledger(app)
    order_id = fresh("check-crash")
    wf_client = workflows.client(app)
    try:
        instance = wf_client.schedule_new_workflow(
            "order_workflow", instance_id=order_id, input={"id": order_id, "quantity": 1, "hold_at": "pack"}
        )
    finally:
        wf_client.close()

    # The kill lands while step 3 waits at its gate: after its effect, before it reports back.
    workflows.wait_for(
        app, instance, lambda: ledger.held(f"{instance}:pack"), "step 3 (pack) reached its gate", PATIENCE
    )
    app.crash()
    workflows.restart(app)
    ledger.open_gate(f"{instance}:pack")
    result = output(workflows.wait(app, instance, PATIENCE))
    assert isinstance(result, dict) and result.get("steps") == ORDER_STEPS, (
        f"after the restart the workflow returned {result!r}"
    )
    runs = Counter(_started(ledger, instance))
    assert runs["validate"] == runs["reserve"] == 1, (
        f"steps 1-2 ran {runs['validate']} and {runs['reserve']} times: "
        "they finished before the crash and must not run again"
    )
    assert runs["pack"] == 2, f"step 3 ran {runs['pack']} times; it was cut off by the crash, so it runs again once"
    effects = Counter(row.step for row in ledger.rows(instance) if row.event == "effect")
    doubled = sorted(step for step, n in effects.items() if n > 1)
    missing = sorted(set(ORDER_STEPS) - set(effects))
    assert not doubled, f"the effect of {doubled} was applied twice: the re-run step must not apply it again"
    assert not missing, f"no effect recorded for {missing}"

    # A crash between two writes: step 4's activity dies right after its first commit past "started".
    torn = fresh("check-torn")
    ledger.arm_crash(torn, "charge")
    wf_client = workflows.client(app)
    try:
        wf_client.schedule_new_workflow("order_workflow", instance_id=torn, input={"id": torn, "quantity": 1})
    finally:
        wf_client.close()
    workflows.wait_for(
        app, torn, lambda: ledger.crashed(torn, "charge"), "step 4 (charge) to die after its first write", PATIENCE
    )
    workflows.restart(app)
    output(workflows.wait(app, torn, PATIENCE))
    charged = sum(1 for row in ledger.rows(torn) if row.step == "charge" and row.event == "effect")
    assert charged != 0, (
        "a crash right after step 4's first write lost its effect: the claim was saved, the effect row was not, "
        "and the re-run saw the claim; save both in one transaction"
    )
    assert charged == 1, (
        f"a crash right after step 4's first write left its effect applied {charged} times: the effect row was "
        "saved before the claim, and the re-run applied it again; save both in one transaction"
    )
    return "steps 1-2 once, step 3 re-run, every effect applied once, also when a crash lands between two writes"


@check(
    "deterministic workflow",
    hint="take the time from ctx.current_utc_datetime (the same on every replay), "
    "never datetime.now() inside a workflow",
)
def deterministic(app: DaprApp) -> str:
    instance, result = _run(app, "stamped_order", {"id": fresh("check-stamp")}, "stamp")
    noted = [row.detail for row in workflows.ledger(app).rows(instance) if row.step == "note_ref"]
    assert len(noted) == 2, f"note_ref ran {len(noted)} times, expected 2"
    assert noted[0] == noted[1], (
        f"the two steps got different references {noted}: the workflow computed a new one on replay"
    )
    return "both steps saw the same reference after a replay"


@check(
    "retries",
    hint="wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=200), max_number_of_attempts="
    "request['max_attempts']); catch wf.TaskFailedError and return {'ok': False, 'error': str(err)}",
)
def retries(app: DaprApp) -> str:
    ledger = workflows.ledger(app)
    instance, result = _run(app, "quote_with_retries", {"failures": 2, "max_attempts": 3}, "retry")
    attempts = ledger.count(instance, "flaky_quote", "attempt")
    assert isinstance(result, dict) and result.get("ok") is True, (
        f"with 3 attempts for an activity that fails twice, the workflow returned {result!r}"
    )
    assert attempts == 3, f"the flaky activity ran {attempts} times with max_number_of_attempts=3 (expected 3)"
    instance, result = _run(app, "quote_with_retries", {"failures": 2, "max_attempts": 2}, "retry")
    attempts = ledger.count(instance, "flaky_quote", "attempt")
    assert attempts == 2, (
        f"the flaky activity ran {attempts} times with max_number_of_attempts=2 (it counts every attempt)"
    )
    assert isinstance(result, dict) and result.get("ok") is False and result.get("error"), (
        f"after the last attempt failed the workflow returned {result!r}; catch wf.TaskFailedError and report it"
    )
    return "3 attempts succeed; 2 attempts end in a handled TaskFailedError"


def _stock(app: DaprApp, product: str) -> int:
    return int(invoke(app, actor_type_in(app, "ProductActor"), product, "Stock"))


@check(
    "saga",
    hint="remember each compensation after its step succeeds; on wf.TaskFailedError, "
    "yield ctx.call_activity(c, input=order) for c in reversed(undo), then return status 'compensated'",
)
def saga(app: DaprApp) -> str:
    ledger = workflows.ledger(app)
    product = fresh("check-kite")
    invoke(app, actor_type_in(app, "ProductActor"), product, "Restock", 10)
    order = {"product": product, "quantity": 3, "ship_to": "Lahore"}
    instance, result = _run(app, "order_saga", {**order, "id": fresh("check-ok")}, "saga")
    assert isinstance(result, dict) and result.get("status") == "completed", f"a good order returned {result!r}"
    assert _stock(app, product) == 7, f"after a completed order of 3, stock is {_stock(app, product)} (expected 7)"
    instance, result = _run(app, "order_saga", {**order, "id": fresh("check-bad"), "ship_to": "nowhere"}, "saga")
    assert isinstance(result, dict) and result.get("status") == "compensated", (
        f"when shipping fails the saga returned {result!r}; expected status 'compensated'"
    )
    expected = ["reserve_stock", "charge_payment", "book_shipping", "refund_payment", "release_stock"]
    started = _started(ledger, instance)
    assert started == expected, f"the steps ran as {started}; expected {expected} (compensations in reverse order)"
    assert _stock(app, product) == 7, f"after the compensated order the stock is {_stock(app, product)}, not back at 7"
    instance, result = _run(app, "order_saga", {**order, "id": fresh("check-big"), "quantity": 99}, "saga")
    started = _started(ledger, instance)
    assert started == ["reserve_stock"], (
        f"an order the stock cannot cover ran {started}; nothing succeeded, so nothing is undone"
    )
    return "completed order, reverse compensation, stock restored"


@check(
    "approval",
    hint="decision = ctx.wait_for_external_event('decision'); timeout = ctx.create_timer(...); "
    "winner = yield wf.when_any([decision, timeout]); compare winner with timeout",
)
def approval(app: DaprApp) -> str:
    wf_client = workflows.client(app)
    try:
        instance = wf_client.schedule_new_workflow(
            "approval", input={"timeout_s": 60}, instance_id=fresh("check-approve")
        )
        wf_client.raise_workflow_event(instance, "decision", data={"approve": True, "by": "check"})
    finally:
        wf_client.close()
    result = output(workflows.wait(app, instance, PATIENCE))
    assert result == {"approved": True, "by": "check"}, (
        f"after a 'decision' event approving it, the workflow returned {result!r}"
    )
    _, result = _run(app, "approval", {"timeout_s": 1}, "timeout")
    assert result == {"approved": False, "by": "timeout"}, (
        f"with no event and a 1 s timer, the workflow returned {result!r}"
    )
    return "the event path and the timeout path"


@check(
    "fan-out",
    hint="tasks = [ctx.call_activity(analyse, input={...}) for a in ANALYSES]; "
    "findings = yield wf.when_all(tasks); then yield the synthesise activity",
)
def fan_out(app: DaprApp) -> str:
    analyses = RESEARCH_ANALYSES
    instance, result = _run(app, "research", "check-product", "research")
    assert isinstance(result, dict) and result.get("from") == list(analyses), (
        f"the synthesis saw {result.get('from') if isinstance(result, dict) else result!r}, "
        f"expected every analysis {analyses}"
    )
    events = workflows.history(app, instance)
    kinds = [e.kind for e in events]
    scheduled = [i for i, k in enumerate(kinds) if k == "TaskScheduled"]
    completed = [i for i, k in enumerate(kinds) if k == "TaskCompleted"]
    assert len(scheduled) == len(analyses) + 1, (
        f"{len(scheduled)} activities were scheduled, expected {len(analyses) + 1}"
    )
    assert scheduled[len(analyses) - 1] < completed[0], (
        "the analyses ran one after another: schedule them all, then yield wf.when_all(tasks) once"
    )
    return f"{len(analyses)} analyses in parallel, then the synthesis"


@check(
    "eternal monitor",
    hint="after the timer: ctx.continue_as_new({**watch, 'checks': watch['checks'] + 1, "
    "'reorders': reorders}); the history starts afresh each time",
)
def monitor(app: DaprApp) -> str:
    product = fresh("check-yoyo")
    wf_client = workflows.client(app)
    instance = fresh("check-monitor")
    try:
        wf_client.schedule_new_workflow(
            "stock_monitor",
            instance_id=instance,
            input={"product": product, "threshold": 5, "batch": 10, "every_s": 0.2, "checks": 0, "reorders": 0},
        )

        # The status that showed 4 checks is the one judged: read again, it can fall in the moment
        # the instance continues as new and has none (then the learner would be blamed for a None).
        seen: dict = {}

        def progressed() -> bool:
            nonlocal seen
            status = workflows.custom_status(app, instance) or {}
            if isinstance(status, dict) and status.get("checks", 0) >= 4:
                seen = status
            return bool(seen)

        workflows.wait_for(app, instance, progressed, "the monitor checked the stock 4 times", PATIENCE)
        events = workflows.history(app, instance)
    finally:
        wf_client.terminate_workflow(instance)
        wf_client.close()
    assert seen.get("reorders") == 1, (
        f"stock started at 0 below a threshold of 5; the monitor reported {seen!r} (expected 1 reorder)"
    )
    assert _stock(app, product) == 10, f"after one reorder of 10 the stock is {_stock(app, product)}"
    assert len(events) < 25, (
        f"the history holds {len(events)} events after 4 checks: continue_as_new should start it afresh"
    )
    return "reorders once, runs on, history stays short"


def _negotiate(app: DaprApp, buyer: tuple[float, float], seller: tuple[float, float], rounds: int):
    names = {"buyer": fresh("check-buyer"), "seller": fresh("check-seller")}
    for role, (opening, limit) in (("buyer", buyer), ("seller", seller)):
        kind = "BuyerAgent" if role == "buyer" else "SellerAgent"
        invoke(
            app, actor_type_in(app, kind), names[role], "Setup", {"limit": limit, "opening": opening, "rounds": rounds}
        )
    deal = {**names, "rounds": rounds, "answer_within_s": 30}
    _, result = _run(app, "mediator", deal, "deal")
    return result


def _monotonic(values: list[float], rising: bool) -> bool:
    return all(
        (b >= a) if rising else (b <= a) for a, b in zip(values, values[1:], strict=False)
    )  # pairs of neighbours


@check(
    "negotiation",
    hint="per round: both = wf.when_all([bid, ask]); yield wf.when_any([both, timer]); "
    "agree at round((bid + ask) / 2, 2) as soon as bid >= ask; give up after deal['rounds']",
)
def negotiation(app: DaprApp) -> str:
    result = _negotiate(app, buyer=(60.0, 100.0), seller=(140.0, 80.0), rounds=6)
    assert isinstance(result, dict) and result.get("agreed") is True, f"overlapping ranges (80-100) gave {result!r}"
    assert 80.0 <= result["price"] <= 100.0, f"the agreed price {result['price']} is outside both limits (80-100)"
    bids = [r["bid"] for r in result["rounds"]]
    asks = [r["ask"] for r in result["rounds"]]
    assert _monotonic(bids, True) and _monotonic(asks, False), (
        f"offers must move monotonically: bids {bids}, asks {asks}"
    )
    last = result["rounds"][-1]
    assert last["bid"] >= last["ask"] and all(r["bid"] < r["ask"] for r in result["rounds"][:-1]), (
        "agree in the first round where bid >= ask, not later"
    )
    result = _negotiate(app, buyer=(40.0, 70.0), seller=(120.0, 90.0), rounds=4)
    assert isinstance(result, dict) and result.get("agreed") is False, (
        f"ranges that do not overlap (70 < 90) gave {result!r}"
    )
    assert len(result.get("rounds", [])) == 4, (
        f"with no overlap the mediator should try all 4 rounds, it recorded {len(result.get('rounds', []))}"
    )
    return "agreement within both limits, monotonic offers, no deal without overlap"


VERSION_VAR = "GIFT_WRAP_VERSION"  # gift_wrap.py registers the version this names
GIFT_WAITING = "waiting for the buyer to collect"  # its custom status while an order waits


def _gift_order(app: DaprApp, item: str) -> str:
    """A gift order scheduled and waiting for its buyer (its instance id)."""
    wf_client = workflows.client(app)
    try:
        instance = wf_client.schedule_new_workflow("gift_order", input=item, instance_id=fresh(f"check-{item}"))
    finally:
        wf_client.close()
    workflows.wait_for(
        app, instance, lambda: workflows.custom_status(app, instance) == GIFT_WAITING, f"the {item} to wait", PATIENCE
    )
    return instance


def _collected(app: DaprApp, instance: str) -> object:
    wf_client = workflows.client(app)
    try:
        wf_client.raise_workflow_event(instance, "collected")
    finally:
        wf_client.close()
    return output(workflows.wait(app, instance, PATIENCE))


@check(
    "versioning",
    hint="an order that passed the pick under v1 must replay as it ran; put the new step behind a patch, "
    "which is True where this code first reaches that point and False where an older instance replays it",
)
def versioning(module_file: Path) -> str:
    """Deploy the learner's gift_wrap.py as v1 with an order waiting, then v2_patched under the same app id:
    the old order must finish as v1 ran it, and a new one must take the wrapping step."""
    app_id, module, folder = fresh("check-gifts"), module_file.stem, module_file.parent
    app = workflows.start_workflow_app(app_id, module, cwd=folder, env={VERSION_VAR: "v1"})
    try:
        old = _gift_order(app, "lamp")
        app = workflows.start_workflow_app(app_id, module, cwd=folder, env={VERSION_VAR: "v2_patched"})
        try:
            kept = _collected(app, old)
        except workflows.WorkflowFailed as failed:
            if failed.error_type != "NonDeterminismError":
                raise
            raise AssertionError(
                "an order started under v1 failed when v2_patched replayed it (NonDeterminismError): "
                "its history has the charge where the new code asks for the wrap"
            ) from None
        assert kept == ["picked lamp", "charged lamp", "shipped lamp"], (
            f"the order started under v1 finished as {kept!r}: it must not be wrapped, it was charged before"
        )
        new = _collected(app, _gift_order(app, "vase"))
        assert new == ["picked vase", "wrapped vase", "charged vase", "shipped vase"], (
            f"an order started under v2_patched finished as {new!r}: it must take the wrapping step"
        )
    finally:
        stop_app(app)
    return "the order from v1 finished unwrapped, the new one was wrapped"
