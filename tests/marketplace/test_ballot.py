"""The ballot actor (lab 06) on the live stack: duplicate votes count once,
a quorum decides, and a deadline without a quorum is "no decision"."""

from __future__ import annotations

import pytest

from lab_env import start_app, stop_app, unique_name, uvicorn_command
from lab_env.core.probes import wait_until
from lab_env.runtime.actors import actor_type, invoke

pytestmark = pytest.mark.stack
VOTERS = [f"agent-{n}" for n in range(5)]


@pytest.fixture(scope="module")
def host():
    app = start_app(
        unique_name("ballots"), uvicorn_command("lab_env.marketplace.agents.ballot:app"), components=["statestore"]
    )
    yield app
    stop_app(app)


def _call(app, ballot: str, method: str, body=None):
    return invoke(app, actor_type("BallotActor"), ballot, method, body)


def test_a_quorum_decides_and_a_voter_counts_once(host):
    ballot = unique_name("refund")
    assert _call(host, ballot, "Open", {"question": "refund order 7?", "electorate": VOTERS, "seconds": 60})["opened"]
    for _ in range(4):  # the same voter, again and again: one vote
        _call(host, ballot, "Vote", {"voter": "agent-0", "choice": "refund"})
    _call(host, ballot, "Vote", {"voter": "agent-1", "choice": "refund"})
    assert _call(host, ballot, "Vote", {"voter": "mallory", "choice": "refund"}) is False
    assert _call(host, ballot, "Result")["decision"] is None  # 2 of 5
    _call(host, ballot, "Vote", {"voter": "agent-2", "choice": "refund"})
    result = _call(host, ballot, "Result")
    assert (result["decision"], result["tally"], result["quorum"]) == ("refund", {"refund": 3}, 3)


def test_the_deadline_without_a_quorum_is_no_decision(host):
    ballot = unique_name("split")
    _call(host, ballot, "Open", {"question": "refund?", "electorate": VOTERS, "seconds": 3})
    _call(host, ballot, "Vote", {"voter": "agent-0", "choice": "refund"})
    _call(host, ballot, "Vote", {"voter": "agent-1", "choice": "deny"})
    wait_until(lambda: not _call(host, ballot, "Result")["open"], 60, "the ballot's deadline")
    assert _call(host, ballot, "Result")["decision"] == "no decision"
    assert _call(host, ballot, "Vote", {"voter": "agent-2", "choice": "refund"}) is False
