"""The one wait (core.probes.wait_until): pure logic, no stack."""

import time

import pytest

from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.labs.checks import CheckFailed, check


class Process:
    """Stands in for an app or a worker: wait_until only asks it why it exited."""

    def __init__(self, name: str, dies_after: int) -> None:
        self.name, self.asked, self.dies_after = name, 0, dies_after

    def exit_reason(self) -> str | None:
        self.asked += 1
        return "exited: Traceback ... KeyError: 'sku'" if self.asked > self.dies_after else None


def test_it_returns_once_the_predicate_holds():
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), 10, "the third poll")


def test_a_watched_process_that_exits_fails_the_wait_at_once_with_its_reason():
    started = time.monotonic()
    with pytest.raises(LabEnvError) as err:
        wait_until(lambda: False, 5, "every order booked", watch=[Process("booker", dies_after=2)])
    assert time.monotonic() - started < 4  # not the 5 s safety net
    assert err.value.problem == "waiting for every order booked: booker exited: Traceback ... KeyError: 'sku'"


def test_the_deadline_names_what_was_awaited_and_suggests_a_fix():
    with pytest.raises(LabEnvError) as err:
        wait_until(lambda: False, 0.3, "the listing")
    assert err.value.problem == "the listing not ready after 0s"
    assert err.value.fix and "run the cell again" in err.value.fix


def test_a_checks_failure_line_is_computed_at_the_deadline_and_the_checks_hint_stays():
    seen = []

    @check("delivery", hint="publish to the listings topic")
    def delivery() -> None:
        wait_until(lambda: False, 0.3, "the check", failure=lambda: f"{len(seen)} of 2 listings arrived")

    seen.append("one")
    with pytest.raises(CheckFailed) as err:
        delivery()
    assert str(err.value) == "delivery: 1 of 2 listings arrived Hint: publish to the listings topic"
    assert err.value.lines() == ["\u274c delivery: 1 of 2 listings arrived", "   Hint: publish to the listings topic"]


def test_every_error_a_learner_reads_is_a_lab_env_error_rendered_once():
    from lab_env.runtime.actors import ActorCallFailed
    from lab_env.runtime.workflows import WorkflowFailed

    errors = [
        CheckFailed("stock", "5 left, expected 0", "reserve one at a time"),
        WorkflowFailed("order-1", "order", "ValueError", "no stock"),
        ActorCallFailed("ProductActor-1a2b3c", "sku-1", "Reserve", 500, '{"message": "KeyError: sku"}'),
    ]
    for err in errors:
        assert isinstance(err, LabEnvError)
        assert type(err)._render_traceback_ is LabEnvError._render_traceback_
        assert err._render_traceback_()[0].startswith("\u274c ")
