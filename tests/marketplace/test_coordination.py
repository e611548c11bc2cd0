"""Coordination protocols as pure logic (lab_env.marketplace.coordination): the rules
lab 06 runs inside actors and workflows, each tested against a wrong answer."""

from __future__ import annotations

import pytest

from lab_env.marketplace.coordination.auction import Ascending, SealedBid
from lab_env.marketplace.coordination.contract_net import Phase, Task
from lab_env.marketplace.coordination.voting import NO_DECISION, Ballot, quorum


@pytest.mark.parametrize("voters, needed", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (100, 51)])
def test_quorum_is_the_smallest_strict_majority(voters, needed):
    assert quorum(voters) == needed


def test_a_voter_counts_once_however_often_it_votes():
    ballot = Ballot("refund order-7", frozenset({"a", "b", "c", "d", "e"}))
    for _ in range(3):
        ballot.cast("a", "refund")  # a retried message
    ballot.cast("b", "refund")
    assert ballot.decision() is None  # 2 of 5: no quorum yet
    ballot.cast("c", "refund")
    assert ballot.decision() == "refund"


def test_a_changed_vote_replaces_the_old_one_and_strangers_do_not_count():
    ballot = Ballot("refund", frozenset({"a", "b", "c"}))
    ballot.cast("a", "refund")
    ballot.cast("a", "deny")
    assert not ballot.cast("mallory", "refund")
    ballot.cast("b", "refund")
    assert ballot.tally() == {"deny": 1, "refund": 1} and ballot.decision() is None


def test_no_quorum_by_the_deadline_is_no_decision_and_late_votes_are_refused():
    ballot = Ballot("refund", frozenset({"a", "b", "c", "d"}))
    ballot.cast("a", "refund")
    ballot.cast("b", "deny")
    assert ballot.close() == NO_DECISION
    assert not ballot.cast("c", "refund")


def test_sealed_bid_first_price_highest_wins_ties_to_the_earliest():
    auction = SealedBid("lamp")
    auction.submit("b1", "ann", 40)
    auction.submit("b2", "bob", 55)
    auction.submit("b3", "cy", 55)
    outcome = auction.close()
    assert (outcome.winner, outcome.price, outcome.bids) == ("bob", 55, 3)


def test_vickrey_winner_pays_the_second_price_and_a_resubmitted_bid_changes_nothing():
    auction = SealedBid("lamp", second_price=True)
    auction.submit("b1", "ann", 40)
    auction.submit("b2", "bob", 70)
    assert not auction.submit("b2", "bob", 999)  # the same bid id again: a retry
    auction.submit("b4", "cy", 52)
    outcome = auction.close()
    assert (outcome.winner, outcome.price) == ("bob", 52)


def test_a_bidder_has_one_standing_bid_and_the_reserve_is_respected():
    auction = SealedBid("lamp", reserve=50)
    auction.submit("b1", "ann", 60)
    auction.submit("b2", "ann", 45)  # ann lowers her bid: the new one replaces the old
    assert auction.close().winner is None and len(auction.bids) == 1


def test_ascending_bids_must_beat_the_leader_by_the_increment():
    auction = Ascending("lamp", opening=10, increment=5)
    assert not auction.submit("x", "ann", 9)
    assert auction.submit("b1", "ann", 10)
    assert not auction.submit("b2", "bob", 14)
    assert auction.submit("b3", "bob", 15)
    assert not auction.submit("b3", "bob", 100)  # replayed id
    assert auction.close().winner == "bob" and auction.leader.amount == 15


def _task() -> Task:
    task = Task("ship-42")
    task.propose("slow", 10, days=9)
    task.propose("cheap", 8, days=5)
    task.propose("tie", 8, days=5)  # same price and days as cheap, but later
    task.refuse("busy")
    return task


def test_one_award_to_the_best_proposal_and_every_loser_is_told():
    task = _task()
    assert task.award() == "cheap"
    assert task.award() == "cheap"  # asking again awards nothing new
    awards = [c for c, kind in task.messages if kind == "award"]
    assert awards == ["cheap"]
    assert sorted(c for c, kind in task.messages if kind == "reject") == ["slow", "tie"]
    assert not task.propose("late", 1, days=1)


def test_a_failed_or_silent_winner_leads_to_a_re_award_then_done():
    task = _task()
    task.award()
    assert task.report("tie", ok=True) == "cheap"  # only the awardee may report
    assert task.report("cheap", ok=False) == "tie"
    assert task.timed_out() == "slow"
    assert task.report("slow", ok=True) == "slow" and task.phase == Phase.DONE


def test_nobody_left_means_unassigned():
    task = Task("t")
    task.propose("only", 5, days=1)
    task.award()
    task.report("only", ok=False)
    assert task.phase == Phase.UNASSIGNED and task.awardee is None


@pytest.mark.parametrize("kind", ["sealed", "vickrey", "english"])
def test_an_auction_survives_a_round_trip_through_its_stored_form(kind):
    import json

    from lab_env.marketplace.coordination.auction import dump, new, restore

    auction = new(kind, "lamp", opening=10)
    auction.submit("b1", "ann", 12)
    auction.submit("b2", "bob", 20)
    copy = restore(json.loads(json.dumps(dump(auction))))
    assert copy.submit("b3", "cy", 30) and not copy.submit("b1", "ann", 99)
    assert copy.close().winner == "cy" and dump(copy)["closed"]
