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
from tests.grading.solution_mutations import rejected, start_wrong

pytestmark = pytest.mark.stack
SOLUTION = SOLUTIONS_DIR / "06_coordination.ipynb"


# Each wrong answer: a solution module and the (old, new) edits that put one mistake in it.
WRONG: dict[str, list[tuple[str, str]]] = {
    "hierarchy": [
        ("                continue\n", "                break\n"),
    ],
    "contract_net": [
        ("awardee = task.report(awardee, ok)", "awardee = task.report(awardee, True)"),
    ],
    "contract_net#2": [
        (
            'task.propose(seller, answer["price"], answer["days"])',
            'task.propose(seller, -answer["price"], answer["days"])',
        ),
    ],
    "auction_house": [
        (
            '        await self.register_reminder(CLOSE, b"", timedelta(seconds=seconds), timedelta(0))\n',
            "        __import__('asyncio').get_running_loop().call_later(\n"
            "            seconds, lambda: __import__('asyncio').ensure_future(self.close_auction()))\n",
        ),
    ],
    "auction_house#first-price": [
        ("        return max(runner_up, reserve)\n", "        return ranked[0].amount\n"),
    ],
    "auction_house#half": [
        ("        return voters // 2 + 1\n", "        return voters / 2\n"),
    ],
    "auction_house#unanimity": [
        ("        return voters // 2 + 1\n", "        return voters\n"),
    ],
    "auction_house#no-reserve": [
        ("        return max(runner_up, reserve)\n", "        return ranked[1].amount if len(ranked) > 1 else 0.0\n"),
    ],
}


def _wrong(start, name: str):
    """The wrong answer ``name`` (in WRONG), started as the lab starts its module."""
    return start_wrong(start, SOLUTION, name.split("#")[0], *WRONG[name])


@pytest.mark.parametrize(
    "wrong, check, because",
    [
        ("hierarchy", lab06.hierarchy, "try its sellers in order and succeed with the third"),  # escalates at once
        ("auction_house", lab06.auction_deadline, "has no reminder named 'close'"),  # a close kept in memory
        ("auction_house#first-price", lab06.vickrey_price, "the winner pays 100.0, but the highest bid wins"),
        ("auction_house#no-reserve", lab06.vickrey_price, "the winner pays 0.0, but a lone bidder pays the reserve"),
        ("auction_house#half", lab06.quorum_rule, "a 2-2 split of 4 voters decides nothing"),
        ("auction_house#unanimity", lab06.quorum_rule, "3 of 5 agreeing are a majority"),
    ],
    ids=[
        "hierarchy-escalates-the-first-failure",
        "auction-close-kept-in-memory",
        "vickrey-first-price",
        "vickrey-reserve-ignored",
        "quorum-half-decides-a-tie",
        "quorum-unanimity",
    ],
)
def test_a_wrong_answer_is_rejected_with_its_reason(start, wrong, check, because):
    rejected(check, _wrong(start, wrong), because=because)


def test_contract_net_rejects_the_highest_price_and_a_missing_re_award(start):
    app = _wrong(start, "contract_net")
    rejected(lab06.contract_net, app, because="awards went to ['crasher']")

    app = _wrong(start, "contract_net#2")
    rejected(lab06.contract_net, app, because="crashes on its award is still running")


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
    rejected(lab06.circuit_breaker, path, "nova", because="names no circuitBreaker")
    rejected(lab06.circuit_breaker, path, "bolt", because="no entry for the peer 'bolt'")
    # A breaker that never trips within the check's calls.
    policy["spec"]["policies"]["circuitBreakers"] = {
        "b": {"maxRequests": 1, "timeout": "3s", "trip": "consecutiveFailures >= 1000"}
    }
    policy["spec"]["targets"]["apps"]["nova"]["circuitBreaker"] = "b"
    path.write_text(yaml.safe_dump(policy))
    rejected(lab06.circuit_breaker, path, "nova", because="never met an open circuit breaker")


def test_scale_rejects_missing_and_miscounted_samples():
    assert "no samples recorded" in verdict(lab06.scale, []).message
    rows = [{"bidders": 1000, "bids": 999, "winner": "b-1"}]
    rejected(lab06.scale, rows, because="999 bids counted of 1000")
