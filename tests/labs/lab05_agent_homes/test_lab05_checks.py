"""Lab 05's access-policy check fails on the tempting wrong ways to derive a
policy from an audit, each with its own message, and the audit itself reads
real sidecars' metrics. (The right answer passes in the solution notebook
under nbval; the unsolved stub fails in tests/grading/test_grading_labs.py.)"""

from __future__ import annotations

import pytest
import yaml

from lab_env.core.paths import REPO_ROOT
from lab_env.labs.checks import verdict
from lab_env.labs.lab05_agent_homes import checks as lab05
from lab_env.marketplace.homes import security

pytestmark = pytest.mark.stack
MARKETPLACE = REPO_ROOT / "lab_env" / "marketplace" / "homes" / "marketplace.yaml"


def _policy(observed, callee, keep) -> dict[str, list[str]]:
    allowed: dict[str, set[str]] = {}
    for call in observed:
        if keep(call, callee):
            allowed.setdefault(call["caller"], set()).add(call["method"])
    return {caller: sorted(methods) for caller, methods in allowed.items()}


def right(observed, callee):
    return _policy(observed, callee, lambda c, who: c["callee"] == who and 200 <= c["status"] < 300)


def every_status(observed, callee):  # a failed call is taken for a need
    return _policy(observed, callee, lambda c, who: c["callee"] == who)


def every_callee(observed, callee):  # every call the caller made, to any agent
    return _policy(observed, callee, lambda c, who: 200 <= c["status"] < 300)


def only_200(observed, callee):  # 201 and 204 are successes too
    return _policy(observed, callee, lambda c, who: c["callee"] == who and c["status"] == 200)


def same_for_all(observed, callee):  # every caller gets every method any caller needed
    needed = right(observed, callee)
    methods = sorted({m for ms in needed.values() for m in ms})
    return {caller: methods for caller in needed}


def typed_table(observed, callee):  # the policy typed from a table, whatever the audit saw
    return {"mediator": ["Stock", "Reserve", "Release"], "buyers": ["Stock"]}


def pruning(observed, callee):  # right, but it removes from the list it is given what it does not keep
    for call in list(observed):
        if call["callee"] != callee or not 200 <= call["status"] < 300:
            observed.remove(call)
    return right(observed, callee)


def not_404(observed, callee):  # a 404 shows no need, and neither does any other refusal
    return _policy(observed, callee, lambda c, who: c["callee"] == who and c["status"] != 404)


def tuple_lists(observed, callee):  # the spec takes lists
    return {caller: tuple(methods) for caller, methods in right(observed, callee).items()}


WRONG = {
    every_status: "lets auditor call Export, which the audit saw fail only (HTTP 404)",
    every_callee: "lets buyers call Negotiate, which it called on mediator, not on products",
    only_200: "leaves out mediator calling Audit, which the audit saw succeed",
    same_for_all: "lets buyers call Reserve, which the audit never saw",
    typed_table: "lets mediator call Release, which the audit never saw",
    not_404: "lets buyers call Audit, which the audit saw fail only (HTTP 403)",
    tuple_lists: "give each caller a list of method names",
}


def test_a_learner_that_changes_what_it_is_given_cannot_change_the_check(spec):
    assert verdict(lab05.access_policy, spec, pruning).passed
    result = verdict(lab05.access_policy, spec, every_status)  # the made-up audits are whole again
    assert not result.passed and WRONG[every_status] in result.message, result.message
    assert "on a made-up audit (" in result.message


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(MARKETPLACE.read_text())


def test_the_audit_reads_each_callers_own_sidecar(spec):
    seen = {(c["caller"], c["callee"], c["method"]): (c["status"], c["count"]) for c in security.audit_calls(spec)}
    assert seen == {
        ("mediator", "products", "Stock"): (200, 3),
        ("mediator", "products", "Reserve"): (200, 2),
        ("mediator", "products", "Release"): (200, 1),
        ("buyers", "products", "Stock"): (200, 4),
        ("buyers", "products", "Price"): (404, 1),  # products serves no Price
        ("buyers", "mediator", "Negotiate"): (200, 2),
        # ("mediator", "sellers", "Offer") is left out: this spec has no sellers
    }


def test_the_right_policy_passes_through_real_sidecars(spec):
    result = verdict(lab05.access_policy, spec, right)
    assert result.passed, result.message
    assert "4 allowed, 4 refused" in result.message, result.message


@pytest.mark.parametrize("wrong", list(WRONG), ids=lambda f: f.__name__)
def test_a_wrong_policy_fails_with_its_own_message(spec, wrong):
    result = verdict(lab05.access_policy, spec, wrong)
    assert not result.passed and WRONG[wrong] in result.message, result.message


def test_an_audit_whose_metrics_miss_calls_says_so_rather_than_return_less(spec, monkeypatch):
    from lab_env.errors import LabEnvError

    # With increasedCardinality off, daprd keeps no path in the label: the audit cannot tell the calls apart.
    off = {"metrics": {"enabled": True, "http": {"increasedCardinality": False}}}
    monkeypatch.setattr(security, "AUDIT_CONFIG", {**security.AUDIT_CONFIG, "spec": off})
    with pytest.raises(LabEnvError, match="counted 0 calls where 13 were made"):
        security.audit_calls(spec)
