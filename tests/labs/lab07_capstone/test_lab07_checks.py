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

    def up(policy_source: str | None = None):
        policy = None
        if policy_source is not None:
            policy = tmp_path / f"offers{len(started)}.py"
            policy.write_text(policy_source)
        # unique_name is per process: the count keeps this module's markets apart.
        m = control.up(unique_name(f"t-cap{next(_numbers)}"), SMALL, policy=policy, view=False)
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


def test_a_policy_file_that_does_not_load_is_one_line_before_the_market_starts(tmp_path):
    broken = tmp_path / "offers.py"
    broken.write_text("class Negotiator:\n    def offer(self, s):\n        return s.limit\n\nimport no_such_module\n")
    with pytest.raises(control.LabEnvError, match=r"offers.py does not load: ModuleNotFoundError: No module named"):
        control.up(unique_name("t-cap-broken"), SMALL, policy=broken, view=False)
    assert not [a for a in control.running_apps() if a.startswith(unique_name("t-cap-broken"))]
