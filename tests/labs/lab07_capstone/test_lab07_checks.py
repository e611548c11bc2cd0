"""The capstone's checks fail on wrong answers, each with its own message,
against the real stack: a negotiator that never concedes, a market that runs
without the learner's negotiator, and books that count a redelivered event
twice. The wrong negotiator is the solution's own my_offers.py with one
mistake put in. (The right answers pass in solutions/07_capstone.ipynb under
nbval; the unsolved stubs fail in tests/labs/test_labs.py.)"""

from __future__ import annotations

import itertools

import pytest

from lab_env import unique_name
from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs.lab07_capstone import checks as lab07
from lab_env.marketplace.market import control
from tests.grading.solution_mutations import mutated, rejected

pytestmark = pytest.mark.stack
SOLUTION = SOLUTIONS_DIR / "07_capstone.ipynb"
SMALL = control.Catalog(products=3, stock=200, buyers=4, sellers=2, rounds=4)
_numbers = itertools.count()


@pytest.fixture
def market(tmp_path):
    started = []

    def up(policy_source: str | None = None, hosts: int = 2):
        policy = None
        if policy_source is not None:
            policy = tmp_path / f"offers{len(started)}.py"
            policy.write_text(policy_source)
        # unique_name is per process: the count keeps this module's markets apart.
        m = control.up(unique_name(f"t-cap{next(_numbers)}"), SMALL, policy=policy, view=False, hosts=hosts)
        started.append(m)
        return m

    yield up
    for m in started:
        control.down(m.name)


def test_negotiator_rejects_one_that_never_concedes(market):
    stubborn = mutated(SOLUTION, "my_offers.py", ("progress = s.round / (s.rounds - 1)", "progress = 0.0"))
    m = market(stubborn)
    rejected(lab07.negotiator, m.app, because="could agree ended without a deal")


def test_negotiator_rejects_a_market_without_the_learners_negotiator_and_books_that_count_repeats(market):
    m = market()  # the reference rule decides
    rejected(lab07.negotiator, m.app, because="not by your negotiator")

    def naive(events):  # adds up every event it reads, repeats included
        totals = {}
        for e in events:
            if e["status"] == "completed":
                totals[e["product"]] = totals.get(e["product"], 0) + e["total"]
        return totals

    rejected(lab07.books_from_events, naive, m.app, because="an order counted twice?")
    assert m.app.alive() and all(host.alive() for host in m.hosts), "the check leaves the market whole again"


def test_books_from_events_needs_a_market_that_outlives_a_host(market):
    m = market(hosts=1)
    rejected(lab07.books_from_events, lambda events: {}, m.app, because="runs on one host")


def test_a_policy_file_that_does_not_load_is_one_line_before_the_market_starts(tmp_path):
    broken = tmp_path / "offers.py"
    broken.write_text("class Negotiator:\n    def offer(self, s):\n        return s.limit\n\nimport no_such_module\n")
    with pytest.raises(control.LabEnvError, match=r"offers.py does not load: ModuleNotFoundError: No module named"):
        control.up(unique_name("t-cap-broken"), SMALL, policy=broken, view=False)
    assert not [a for a in control.running_apps() if a.startswith(unique_name("t-cap-broken"))]


# -- trust: the tempting wrong answers -------------------------------------------------------------


def _solution_trust(folder):
    """The solution's trust, from the notebook's own cell, in a file of its own (so its source can be read)."""
    import json

    from lab_env.marketplace.agents.offer_policy import load_file

    cell = next(
        "".join(c["source"])
        for c in json.loads(SOLUTION.read_text())["cells"]
        if "".join(c["source"]).startswith("def trust(")
    )
    path = folder / "solution_trust.py"
    path.write_text(cell)
    return load_file(str(path)).trust


def test_trust_rejects_rules_that_forgive_or_punish_wrongly_before_any_order(market):
    m = market()  # the pure part comes first: no order is placed for these
    wrong = {
        "a failure costs nothing": (lambda s: 1.0, "still beats a reliable seller's"),
        "a failure costs too little": (lambda s: 1 / (1 + 0.1 * s["failed"]), "still beats a reliable seller's"),
        "a newcomer is distrusted": (lambda s: (s["delivered"] + 1) / (s["delivered"] + s["failed"] + 2), "not 1"),
        "a newcomer divides by zero": (lambda s: s["delivered"] / (s["delivered"] + s["failed"]), "ZeroDivisionError"),
        "a failure drops to zero": (lambda s: 0.0 if s["failed"] else 1.0, "above 0"),
        "deliveries count against a seller that failed": (
            lambda s: 1.0 if s["failed"] == 0 else 1 / (1 + s["failed"] + s["delivered"]),
            "lowered the trust",
        ),
        "not a number": (lambda s: "high", "not a number"),
        "a first delivery costs trust": (
            lambda s: (
                1.0 if s["delivered"] + s["failed"] == 0 else (s["delivered"] + 1) / (s["delivered"] + s["failed"] + 2)
            ),
            "no failure has trust",
        ),
    }
    for rule, because in wrong.values():
        rejected(lab07.reputation, rule, m.app, because=because)


def test_trust_rejects_a_market_that_weighs_with_the_courses_rule_or_has_nobody_to_distrust(market, tmp_path):
    right = _solution_trust(tmp_path)
    rejected(lab07.reputation, right, market().app, because="with the course's trust, not yours")
    honest = control.up(unique_name(f"t-cap{next(_numbers)}"), SMALL, trust=right, view=False)
    try:
        rejected(lab07.reputation, right, honest.app, because="no unreliable seller")
    finally:
        control.down(honest.name)


def test_trust_rejects_a_rule_the_market_never_used_when_it_keeps_awarding_the_unreliable_seller(tmp_path):
    # The learner's function passes the pure part, but the market was given one that never counts a failure.
    right = _solution_trust(tmp_path)

    forgiving = tmp_path / "forgiving.py"
    forgiving.write_text("def trust(standing):\n    return 1.0\n")
    catalog = control.Catalog(products=3, stock=100, buyers=4, sellers=3, rounds=4, unreliable=(0,))
    m = control.up(unique_name(f"t-cap{next(_numbers)}"), catalog, trust=forgiving, view=False)
    try:
        rejected(lab07.reputation, right, m.app, because="never delivers, yet won")
    finally:
        control.down(m.name)
    right_market = control.up(unique_name(f"t-cap{next(_numbers)}"), catalog, trust=right, view=False)
    try:
        result = lab07_verdict(right, right_market)
        assert result.passed, result.message
    finally:
        control.down(right_market.name)


def lab07_verdict(rule, m):
    from lab_env.labs.checks import verdict

    return verdict(lab07.reputation, rule, m.app)
