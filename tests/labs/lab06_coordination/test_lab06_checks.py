"""Lab 06's checks fail on wrong answers, each with its own message, against
the real stack. The wrong answers are the solution's own modules (read from
solutions/06_coordination.ipynb) with one mistake put in: a category manager
that gives up at the first failure, a contract net that awards the highest
price or never re-awards, an auction deadline kept in the process's memory,
a policy with no circuit breaker. (The right answers pass in the solution
notebook under nbval; the unsolved stubs fail in tests/labs/test_labs.py.)"""

from __future__ import annotations

import pytest
import yaml

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs.checks import verdict
from lab_env.labs.lab06_coordination import checks as lab06
from tests.grading.solution_mutations import mutated

pytestmark = pytest.mark.stack
SOLUTION = SOLUTIONS_DIR / "06_coordination.ipynb"


def _mutated(name: str, *edits: tuple[str, str]) -> str:
    return mutated(SOLUTION, name, *edits)


def test_hierarchy_rejects_a_manager_that_escalates_the_first_failure(start):
    app = start("hierarchy", _mutated("hierarchy.py", ("                continue\n", "                break\n")))
    result = verdict(lab06.hierarchy, app)
    assert not result.passed and "try its sellers in order and succeed with the third" in result.message, result.message


def test_contract_net_rejects_the_highest_price_and_a_missing_re_award(start):
    app = start(
        "contract_net",
        _mutated("contract_net.py", ("awardee = task.report(awardee, ok)", "awardee = task.report(awardee, True)")),
    )
    result = verdict(lab06.contract_net, app)
    assert not result.passed and "awards went to ['crasher']" in result.message, result.message

    app = start(
        "contract_net",
        _mutated(
            "contract_net.py",
            (
                'task.propose(seller, answer["price"], answer["days"])',
                'task.propose(seller, -answer["price"], answer["days"])',
            ),
        ),
    )
    result = verdict(lab06.contract_net, app)
    assert not result.passed and "crashes on its award is still running" in result.message, result.message


def test_auction_deadline_rejects_a_close_kept_in_memory(start):
    app = start(
        "auction_house",
        _mutated(
            "auction_house.py",
            (
                '        await self.register_reminder(CLOSE, b"", timedelta(seconds=seconds), timedelta(0))\n',
                "        __import__('asyncio').get_running_loop().call_later(\n"
                "            seconds, lambda: __import__('asyncio').ensure_future(self.close_auction()))\n",
            ),
        ),
    )
    result = verdict(lab06.auction_deadline, app)
    assert not result.passed and "has no reminder named 'close'" in result.message, result.message


def test_circuit_breaker_rejects_a_policy_without_one_and_one_for_another_app(tmp_path):
    policy = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "p"},
        "spec": {
            "policies": {
                "timeouts": {"quick": "2s"},
                "retries": {"twice": {"policy": "constant", "duration": "100ms", "maxRetries": 2}},
            },
            "targets": {"apps": {"nova": {"timeout": "quick", "retry": "twice"}}},
        },
    }
    path = tmp_path / "peer-resiliency.yaml"
    path.write_text(yaml.safe_dump(policy))
    result = verdict(lab06.circuit_breaker, path, "nova")
    assert not result.passed and "names no circuitBreaker" in result.message, result.message
    result = verdict(lab06.circuit_breaker, path, "bolt")
    assert not result.passed and "no entry for the peer 'bolt'" in result.message, result.message
    # A breaker that never trips within the check's calls.
    policy["spec"]["policies"]["circuitBreakers"] = {
        "b": {"maxRequests": 1, "timeout": "3s", "trip": "consecutiveFailures >= 1000"}
    }
    policy["spec"]["targets"]["apps"]["nova"]["circuitBreaker"] = "b"
    path.write_text(yaml.safe_dump(policy))
    result = verdict(lab06.circuit_breaker, path, "nova")
    assert not result.passed and "never met an open circuit breaker" in result.message, result.message


def test_scale_rejects_missing_and_miscounted_samples():
    assert "no samples recorded" in verdict(lab06.scale, []).message
    rows = [{"bidders": 1000, "bids": 999, "winner": "b-1"}]
    result = verdict(lab06.scale, rows)
    assert not result.passed and "999 bids counted of 1000" in result.message, result.message
