"""Lab 04's checks fail on wrong answers, each with its own message, against
the real Dapr runtime. The wrong answers are the solution's own modules
(read from solutions/04_workflows.ipynb) with one mistake put in: a step
that is not idempotent, the clock read in a workflow, compensations in the
wrong order, analyses one after another, and so on. (The right answers pass
in the solution notebook under nbval; the unsolved stubs fail in
tests/labs/test_labs.py.)"""

from __future__ import annotations

import pytest

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs.checks import verdict
from lab_env.labs.lab04_workflows import checks as lab04
from tests.grading.solution_mutations import rejected, start_wrong, written

pytestmark = pytest.mark.stack
SOLUTION = SOLUTIONS_DIR / "04_workflows.ipynb"


# Exercise 2's answer: the claim and the effect row in one commit.
ONE_COMMIT = (
    "    with LEDGER.transaction() as tx:\n"
    '        if tx.claim(f"{key}:{step}"):\n'
    '            tx.append(key, step, "effect")\n'
)

# Each wrong answer: a solution module and the (old, new) edits that put one mistake in it.
WRONG: dict[str, list[tuple[str, str]]] = {
    "order_workflow": [
        (ONE_COMMIT, '    LEDGER.append(key, step, "effect")\n'),
        (
            "ref = f\"{order['id']}@{ctx.current_utc_datetime:%H:%M:%S.%f}\"",
            "ref = f\"{order['id']}@{__import__('time').time_ns()}\"",
        ),
        ('max_number_of_attempts=request["max_attempts"]', 'max_number_of_attempts=request["max_attempts"] + 1'),
    ],
    # The tempting wrong answers to exercise 2: each passes a crash that lands after the effect.
    "order_workflow#claim-then-effect": [
        (ONE_COMMIT, '    if LEDGER.apply_once(f"{key}:{step}"):\n        LEDGER.append(key, step, "effect")\n'),
    ],
    "order_workflow#effect-then-claim": [
        (
            ONE_COMMIT,
            '    if not LEDGER.effects(f"{key}:{step}"):\n'
            '        LEDGER.append(key, step, "effect")\n'
            '        LEDGER.apply_once(f"{key}:{step}")\n',
        ),
    ],
    "order_workflow#a-name-from-the-clock": [
        ('tx.claim(f"{key}:{step}")', "tx.claim(f\"{key}:{step}:{__import__('time').time_ns()}\")"),
    ],
    "order_saga": [
        ("for undo_step in reversed(undo):", "for undo_step in undo:"),
        ("if winner == timeout:", "if winner != timeout:"),
    ],
    "stock_monitor": [
        (
            '    stock = yield ctx.call_activity(stock_level, input=watch["product"])\n',
            '    while True:\n        stock = yield ctx.call_activity(stock_level, input=watch["product"])\n',
        ),
        (
            '    reorders = watch["reorders"]\n    if stock',
            '        reorders = watch["reorders"]\n        if stock',
        ),
        ("        yield ctx.call_child_workflow(", "            yield ctx.call_child_workflow("),
        (
            "                                      instance_id=",
            "                                          instance_id=",
        ),
        (
            "        reorders += 1\n    ctx.set_custom_status",
            "            reorders += 1\n        ctx.set_custom_status",
        ),
        (
            '    yield ctx.create_timer(timedelta(seconds=watch["every_s"]))\n',
            '        yield ctx.create_timer(timedelta(seconds=watch["every_s"]))\n'
            '        watch = {**watch, "checks": watch["checks"] + 1, "reorders": reorders}\n',
        ),
        ('    ctx.continue_as_new({**watch, "checks": watch["checks"] + 1, "reorders": reorders})\n', ""),
    ],
    "market_research": [
        (
            '    tasks = [ctx.call_activity(analyse, input={"product": product, "analysis": a})'
            " for a in ANALYSES]\n"
            "    findings = yield wf.when_all(tasks)\n",
            "    findings = []\n    for a in ANALYSES:\n"
            "        findings.append("
            '(yield ctx.call_activity(analyse, input={"product": product, "analysis": a})))\n',
        ),
    ],
    "negotiation": [
        ("price = agreed_price(bid_price, ask_price)", "price = agreed_price(bid_price * 1.2, ask_price)"),
    ],
}


def _wrong(start, name: str):
    """The wrong answer ``name`` (in WRONG), started as the lab starts its module."""
    return start_wrong(start, SOLUTION, name.split("#")[0], *WRONG[name])


def test_order_checks_reject_a_doubled_effect_the_clock_and_an_extra_attempt(start):
    app = _wrong(start, "order_workflow")
    assert verdict(lab04.order_workflow, app).passed  # the mistakes are elsewhere
    rejected(lab04.crash_resume, app, because="the effect of ['pack'] was applied twice")
    rejected(lab04.deterministic, app, because="different references")
    rejected(lab04.retries, app, because="ran 3 times with max_number_of_attempts=2")


@pytest.mark.parametrize(
    "wrong, because",
    [
        ("order_workflow#claim-then-effect", "lost its effect"),  # a crash between the two commits
        ("order_workflow#effect-then-claim", "left its effect applied 2 times"),
        ("order_workflow#a-name-from-the-clock", "the effect of ['pack'] was applied twice"),
    ],
    ids=["claim-then-effect", "effect-then-claim", "a-name-from-the-clock"],
)
def test_an_effect_in_two_commits_or_under_a_new_name_is_rejected(start, wrong, because):
    rejected(lab04.crash_resume, _wrong(start, wrong), because=because)


def test_saga_and_approval_reject_forward_compensation_and_a_swapped_winner(start):
    app = _wrong(start, "order_saga")
    rejected(lab04.saga, app, because="compensations in reverse order")
    rejected(lab04.approval, app, because="after a 'decision' event approving it")


@pytest.mark.parametrize(
    "wrong, check, because",
    [
        ("stock_monitor", lab04.monitor, "continue_as_new should start it afresh"),  # one history that grows
        ("market_research", lab04.fan_out, "one after another"),  # analyses not fanned out
    ],
    ids=["monitor-loop-in-one-history", "fan-out-one-after-another"],
)
def test_a_wrong_answer_is_rejected_with_its_reason(start, wrong, check, because):
    rejected(check, _wrong(start, wrong), because=because)


def test_negotiation_rejects_agreeing_before_the_offers_meet(start):
    app = _wrong(start, "negotiation")
    result = verdict(lab04.negotiation, app)
    assert not result.passed and ("outside both limits" in result.message or "not later" in result.message), (
        result.message
    )


PATCHED_STEP = '    if ctx.is_patched("gift-wrap"):\n        done.append((yield ctx.call_activity(wrap, input=item)))\n'


@pytest.mark.parametrize(
    "new, because",
    [
        ("    done.append((yield ctx.call_activity(wrap, input=item)))\n", "failed when v2_patched replayed it"),
        ('    if False and ctx.is_patched("gift-wrap"):\n' + PATCHED_STEP.split("\n", 1)[1], "must take the wrapping"),
    ],
    ids=["the-new-step-unguarded", "the-new-step-never-taken"],
)
def test_versioning_rejects_a_change_that_breaks_old_orders_or_never_reaches_new_ones(tmp_path, new, because):
    rejected(lab04.versioning, written(tmp_path, SOLUTION, "gift_wrap.py", (PATCHED_STEP, new)), because=because)
