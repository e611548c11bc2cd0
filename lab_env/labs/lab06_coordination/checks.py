"""Checks for lab 06: how agents coordinate.

Each check sets up its own agents (fresh actor ids, its own seller apps, its
own copy of the learner's policy) against the learner's app or file, and
judges what the real runtime did: the replies, the actors' state, the
messages each seller app received, the workflow's output. Nothing comes from
the notebook's variables, so the grader runs them with the same arguments.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from lab_env.core.probes import wait_until
from lab_env.labs.checks import check, fresh
from lab_env.marketplace.agents.auctioneer import CLOSE, valuation
from lab_env.marketplace.agents.contractor import read_inbox_of, start_sellers
from lab_env.marketplace.coordination.contract_net import Proposal, rank
from lab_env.runtime import sidecar, workflows
from lab_env.runtime.actors import actor_type_in, invoke
from lab_env.runtime.apps import DaprApp, start_app, stop_app, stop_apps, unique_name
from lab_env.runtime.peers import call
from lab_env.stack.components import load_resource

# Safety nets against code that never finishes. A right answer takes a few
# seconds; these only stop a wrong one from hanging the cell.
PATIENCE = 120.0
AUCTION_S = 12  # the checked auction's deadline: it must outlast 13 actor calls on a busy machine
BREAKER_TIMEOUT_MAX_S = 10  # longer would make the check wait that long for the breaker to close


# -- 1. hierarchy -----------------------------------------------------------------


@check(
    "hierarchy",
    hint="in CategoryManager.fulfil: try each seller in order; on an exception note "
    "{'seller': s, 'error': str(err)} in failures and try the next; return ok with the first "
    "that ships, else {'ok': False, 'category': ..., 'failures': failures} so the market handles it",
)
def hierarchy(app: DaprApp) -> str:
    seller_t, category_t, market_t = (actor_type_in(app, n) for n in ("SellerLeaf", "CategoryManager", "MarketManager"))
    tag = fresh()
    stock = {f"s1-{tag}": 0, f"s2-{tag}": 1, f"s3-{tag}": 5, f"s4-{tag}": 5, f"e1-{tag}": 0, f"e2-{tag}": 1}
    for seller, units in stock.items():
        invoke(app, seller_t, seller, "Setup", {"stock": units})
    invoke(app, category_t, f"lamps-{tag}", "Setup", {"sellers": [f"s1-{tag}", f"s2-{tag}", f"s3-{tag}", f"s4-{tag}"]})
    invoke(app, category_t, f"rugs-{tag}", "Setup", {"sellers": [f"e1-{tag}", f"e2-{tag}"]})
    market = f"market-{tag}"
    invoke(app, market_t, market, "Setup", {})

    handled = invoke(app, market_t, market, "Fulfil", {"id": f"o1-{tag}", "category": f"lamps-{tag}", "quantity": 2})
    assert isinstance(handled, dict) and handled.get("ok") is True, (
        f"an order two sellers cannot ship but the third can came back {handled!r}; the category manager should "
        "try its sellers in order and succeed with the third"
    )
    assert handled.get("seller") == f"s3-{tag}", (
        f"the order was shipped by {handled.get('seller')!r}, expected the first seller that can (s3)"
    )
    failed = [f.get("seller") for f in handled.get("failures", [])]
    assert failed == [f"s1-{tag}", f"s2-{tag}"], (
        f"failures reported {failed}, expected the two sellers that failed, in order"
    )
    assert handled.get("handled_by") == "category", "a failure a category manager can handle must not reach the market"
    left = {s: invoke(app, seller_t, s, "Fulfil", {"id": "probe", "quantity": 0})["left"] for s in stock}
    assert left[f"s3-{tag}"] == 3 and left[f"s4-{tag}"] == 5, (
        f"stock after the order: s3 {left[f's3-{tag}']} (expected 3), s4 {left[f's4-{tag}']} (expected 5): "
        "exactly one seller ships, and no seller after it is asked"
    )

    escalated = invoke(app, market_t, market, "Fulfil", {"id": f"o2-{tag}", "category": f"rugs-{tag}", "quantity": 2})
    assert isinstance(escalated, dict) and escalated.get("ok") is False and escalated.get("handled_by") == "market", (
        f"an order no seller of its category can ship came back {escalated!r}; the category manager must report "
        "{'ok': False, ...} up, and the market handles it"
    )
    backorders = invoke(app, market_t, market, "Report")["backorders"]
    assert [b["order"] for b in backorders] == [f"o2-{tag}"], (
        f"the market's back orders are {backorders}, expected o2 only"
    )
    reasons = [f.get("seller") for f in backorders[0].get("failures", [])]
    assert reasons == [f"e1-{tag}", f"e2-{tag}"], (
        f"the market was told of failures {reasons}, expected both rug sellers'"
    )
    return "a leaf failure handled by its category; a category failure reported to the market"


# -- 2. peer to peer ---------------------------------------------------------------


def _saved_policy(path: Path, peer: str) -> dict:
    if not path.exists():
        raise AssertionError(f"{path.name} is not saved yet: finish it and run its %%resource_file cell")
    doc = load_resource(path)
    assert doc["kind"] == "Resiliency", f"{path.name} is a {doc['kind']}, expected kind: Resiliency"
    spec = doc.get("spec") or {}
    target = ((spec.get("targets") or {}).get("apps") or {}).get(peer)
    assert isinstance(target, dict), f"spec.targets.apps has no entry for the peer {peer!r}"
    policies = spec.get("policies") or {}
    for kind, section in (("timeout", "timeouts"), ("retry", "retries"), ("circuitBreaker", "circuitBreakers")):
        name = target.get(kind)
        assert name, f"the peer's target names no {kind}"
        assert name in (policies.get(section) or {}), (
            f"the target's {kind} {name!r} is not defined under policies.{section}"
        )
    breaker = policies["circuitBreakers"][target["circuitBreaker"]]
    seconds = _seconds(str(breaker.get("timeout", "")))
    assert seconds is not None and 0 < seconds <= BREAKER_TIMEOUT_MAX_S, (
        f"the circuit breaker's timeout is {breaker.get('timeout')!r}; "
        f"give it one of at most {BREAKER_TIMEOUT_MAX_S}s, "
        "so a peer that is back is tried again soon"
    )
    assert "consecutiveFailures" in str(breaker.get("trip", "")), "trip the breaker on consecutiveFailures, e.g. >= 3"
    return doc


def _seconds(duration: str) -> float | None:
    units = {"ms": 0.001, "s": 1, "m": 60}
    for unit in ("ms", "s", "m"):
        if duration.endswith(unit):
            try:
                return float(duration[: -len(unit)]) * units[unit]
            except ValueError:
                return None
    return None


@check(
    "circuit breaker",
    hint="policies: timeouts (e.g. quick: 2s), retries (constant, 100ms, maxRetries: 2) and "
    "circuitBreakers (maxRequests: 1, timeout: 3s, trip: consecutiveFailures >= 3); "
    "targets.apps.${PEER} names all three",
)
def circuit_breaker(path: Path, peer: str) -> str:
    doc = _saved_policy(path, peer)
    sellers = start_sellers({"peer": (42.0, 1, "reliable")}, prefix=f"chk-{fresh()}-")
    target = sellers["peer"]
    spec = doc["spec"]
    mine = {
        **doc,
        "metadata": {"name": f"chk-{fresh()}"},
        "spec": {**spec, "targets": {**spec["targets"], "apps": {target.app_id: spec["targets"]["apps"][peer]}}},
    }
    folder = Path(tempfile.mkdtemp(prefix="lab06-breaker-"))
    (folder / "resiliency.yaml").write_text(yaml.safe_dump(mine))
    caller = None
    try:
        caller = start_app(unique_name(f"chk-caller-{fresh()}"), components=[], resources=[folder / "resiliency.yaml"])
        first = call(caller, target.app_id, "quote", {"task": "hello"})
        assert first.ok, f"a call to the running peer failed: {first.status} {first.body}"
        target.crash()  # the peer's app and sidecar die
        outcomes = [call(caller, target.app_id, "quote", {"task": f"down-{n}"}) for n in range(12)]
        failed = [r for r in outcomes if r.ok]
        assert not failed, "a call to a peer that is down succeeded"
        assert any(r.breaker_open for r in outcomes), (
            f"12 calls to a peer that is down never met an open circuit breaker (they said: {outcomes[-1].body}); "
            "check the trip rule and that the target is the peer's app id"
        )
        target.restart()

        def answered() -> bool:
            return call(caller, target.app_id, "quote", {"task": "back"}).ok

        wait_until(
            answered,
            PATIENCE,
            "the breaker to close again once the peer was back",
        )
    finally:
        if caller is not None:
            stop_app(caller)
        stop_app(target)
    return "open while the peer was down, closed again once it was back"


# -- 4. contract net ---------------------------------------------------------------

# (price, days, behaviour): the best proposal crashes when awarded, the next
# hangs, then two tie on price and days; one refuses, one answers too late.
CONTRACT_SELLERS: dict[str, tuple[float, int, str]] = {
    "crasher": (60.0, 2, "crashes"),
    "hanger": (65.0, 2, "hangs"),
    "tie-a": (70.0, 3, "reliable"),
    "tie-b": (70.0, 3, "reliable"),
    "pricey": (90.0, 1, "reliable"),
    "refuser": (50.0, 1, "refuses"),
    "late": (10.0, 1, "late"),
}
# Deadlines long enough for seven brand-new sidecars to answer on a busy 2-core machine, and well
# short of the late seller's delay and the hanger's hang, which must miss them.
PROPOSE_WITHIN_S, REPORT_WITHIN_S, LATE_BY_S = 10, 15, 30


def run_contract_net(
    app: DaprApp, sellers: dict[str, DaprApp], task_id: str, propose_within_s: float, report_within_s: float
) -> dict:
    """Run the learner's contract_net workflow once; its output."""
    client = workflows.client(app)
    try:
        instance = client.schedule_new_workflow(
            "contract_net",
            instance_id=f"{task_id}-{fresh()}",
            input={
                "task": task_id,
                "sellers": [s.app_id for s in sellers.values()],
                "propose_within_s": propose_within_s,
                "report_within_s": report_within_s,
            },
        )
    finally:
        client.close()
    return workflows.output(workflows.wait(app, instance, PATIENCE))


@check(
    "contract net",
    hint="award with task.award(), tell every (seller, 'reject') in task.messages; then while "
    "task.phase == Phase.AWARDED: yield when_any([award activity, timer]); a timer first -> "
    "task.timed_out(); a TaskFailedError or done False -> task.report(awardee, False)",
)
def contract_net(app: DaprApp) -> str:
    sellers = start_sellers(CONTRACT_SELLERS, env={"CONTRACTOR_DELAY_S": str(LATE_BY_S)}, prefix=f"chk-{fresh()}-")
    by_id = {s.app_id: name for name, s in sellers.items()}
    try:
        result = run_contract_net(app, sellers, f"task-{fresh()}", PROPOSE_WITHIN_S, REPORT_WITHIN_S)
        inboxes = {name: read_inbox_of(s) for name, s in sellers.items()}
    finally:
        for seller in sellers.values():
            seller.crash()  # disposable, and two of them are in the middle of a long request
        stop_apps(sellers.values())
    assert isinstance(result, dict) and "phase" in result, f"the workflow returned {result!r}"
    proposals = [Proposal(by_id[p["contractor"]], p["price"], p["days"], p["seq"]) for p in result.get("proposals", [])]
    proposed = sorted(p.contractor for p in proposals)
    assert proposed == sorted(n for n in CONTRACT_SELLERS if n not in ("refuser", "late")), (
        f"proposals taken from {proposed}: the refusal and the answer after the deadline must not count"
    )
    assert inboxes["crasher"] is None, "the seller that crashes on its award is still running: it was never awarded"

    awards = sorted((m["at"], name) for name, box in inboxes.items() if box for m in box if m["kind"] == "award")
    awarded = ["crasher", *[name for _, name in awards]]  # the crasher's inbox died with it, but it was first
    expected = [p.contractor for p in rank(proposals)][:3]  # crasher, hanger, then the earlier of the tie
    assert awarded == expected, (
        f"awards went to {awarded} in this order, expected {expected}: the best proposal by (price, days, arrival), "
        "and after a failure or a missed report the next best"
    )
    failed = [by_id.get(s) for s in result.get("failed", [])]
    assert failed == expected[:2], (
        f"the workflow recorded failures of {failed}, expected {expected[:2]}: the crash, then the missed report"
    )
    assert result.get("phase") == "done" and by_id.get(result.get("awardee")) == expected[-1], (
        f"the task ended {result.get('phase')!r} with {result.get('awardee')!r}; it should be done by {expected[-1]}"
    )
    for name, box in inboxes.items():
        if name in ("crasher", "refuser", "late"):
            continue
        kinds = [m["kind"] for m in box or []]
        assert kinds.count("award") <= 1, f"{name} was awarded the task {kinds.count('award')} times"
        assert kinds.count("reject") == 1, (
            f"{name} was sent {kinds.count('reject')} rejections, expected exactly 1 (every loser is told once)"
        )
    return (
        f"{len(awarded)} awards, one at a time, in the rule's order; {len(proposals) - 1} losers told once; "
        "re-awarded after a crash and after a missed report"
    )


# -- 5. auctions --------------------------------------------------------------------


@check(
    "auction deadline",
    hint="schedule_close: await self.register_reminder(CLOSE, b'', timedelta(seconds=seconds), "
    "timedelta(0)); receive_reminder: if name == CLOSE: close_auction(), then unregister it",
)
def auction_deadline(app: DaprApp) -> str:
    auctioneer_t, bidder_t = actor_type_in(app, "AuctioneerActor"), actor_type_in(app, "BidderActor")
    auction, bidders = f"vase-{fresh()}", [f"bidder-{fresh()}-{n}" for n in range(12)]
    # Sealed bids at the first price: the deadline is graded apart from exercise 4b's Vickrey price.
    opened = invoke(app, auctioneer_t, auction, "Open", {"kind": "sealed", "item": "vase", "seconds": AUCTION_S})
    assert opened == {"opened": True}, f"Open answered {opened!r}"
    for bidder in bidders:
        assert invoke(app, bidder_t, bidder, "Bid", auction) is True, f"{bidder}'s bid was not accepted"
    retried = invoke(app, bidder_t, bidders[0], "Bid", auction)
    assert retried is False, "a bidder's retried bid (the same bid id) was accepted again"
    reminder = sidecar.get(app, sidecar.actor_reminder_path(auctioneer_t, auction, CLOSE), timeout=10)
    assert reminder.status_code == 200, (
        f"after Open, the auction has no reminder named {CLOSE!r}: schedule_close must register one (a timer or an "
        "asyncio task dies with the process)"
    )
    app.crash()  # the host dies before the deadline; only the state store and the scheduler remember the auction
    workflows.restart(app)
    wait_until(
        lambda: invoke(app, auctioneer_t, auction, "Outcome") is not None,
        PATIENCE,
        "the auction's close",
        failure="the auction never closed after its host crashed: its deadline must outlive the "
        "process (a reminder), and receive_reminder must close it",
    )
    outcome = invoke(app, auctioneer_t, auction, "Outcome")
    values = sorted(((valuation(b, auction), b) for b in bidders), reverse=True)
    assert outcome.get("bids") == len(bidders), (
        f"{outcome.get('bids')} bids counted, expected {len(bidders)} (one per bidder)"
    )
    assert outcome.get("winner") == values[0][1], f"{outcome.get('winner')} won; the highest bid was {values[0][1]}'s"
    assert outcome.get("price") == values[0][0], (
        f"the winner pays {outcome.get('price')}; in a sealed-bid auction, its own bid {values[0][0]}"
    )
    return f"closed by its reminder after a crash: {len(bidders)} bids, the highest wins"


# Each case: bids in the order they arrive, the reserve, what the winner of a Vickrey auction pays, and why.
VICKREY_CASES: list[tuple[list[float], float, float, str]] = [
    ([100.0, 60.0, 70.0], 0.0, 70.0, "the highest bid wins and pays the next highest, not its own"),
    ([80.0, 80.0], 0.0, 80.0, "two equal top bids: the next highest is as high as the winner's"),
    ([50.0], 40.0, 40.0, "a lone bidder pays the reserve, the only bid it had to beat"),
    ([100.0, 30.0], 40.0, 40.0, "the next bid is below the reserve: the winner pays the reserve"),
]


@check(
    "vickrey price",
    hint="the winner pays what it had to beat to win: the next bid, or the reserve when that is higher "
    "(and when nobody else bid)",
)
def vickrey_price(app: DaprApp) -> str:
    """Auctions on the learner's auction house, with bids chosen so each wrong price rule shows."""
    auctioneer_t = actor_type_in(app, "AuctioneerActor")
    for amounts, reserve, expected, why in VICKREY_CASES:
        auction = f"lot-{fresh()}"
        terms = {"kind": "vickrey", "item": "lot", "seconds": 30, "reserve": reserve, "bidders": len(amounts)}
        invoke(app, auctioneer_t, auction, "Open", terms)
        for n, amount in enumerate(amounts):  # the last invited bid closes the auction
            invoke(app, auctioneer_t, auction, "Bid", {"bid_id": f"{auction}-{n}", "bidder": f"b{n}", "amount": amount})
        outcome = invoke(app, auctioneer_t, auction, "Outcome")
        assert outcome is not None, f"the auction with bids {amounts} did not close when all its bidders had bid"
        assert outcome["price"] == expected, (
            f"bids {amounts} with reserve {reserve}: the winner pays {outcome['price']}, but {why} ({expected})"
        )
    return f"{len(VICKREY_CASES)} auctions, each priced at what its winner had to beat"


# Each case: the electorate's size, the votes cast (choice -> how many), what the ballot must say while open, and why.
QUORUM_CASES: list[tuple[int, dict[str, int], str | None, str]] = [
    (4, {"yes": 2, "no": 2}, None, "a 2-2 split of 4 voters decides nothing: half is not a majority"),
    (5, {"yes": 2, "no": 1}, None, "2 of 5 agreeing decide nothing: a minority could then outvote the rest"),
    (5, {"yes": 3, "no": 2}, "yes", "3 of 5 agreeing are a majority: they decide"),
    (4, {"yes": 3}, "yes", "3 of 4 agreeing are a majority: they decide, unanimity is not needed"),
    (1, {"no": 1}, "no", "the one voter of a one-voter ballot decides"),
]


@check(
    "quorum",
    hint="the fewest agreeing votes such that two different choices can never both have that many",
)
def quorum_rule(app: DaprApp) -> str:
    """Ballots on the learner's auction house, each open while its votes are read (no deadline needed)."""
    ballot_t = actor_type_in(app, "BallotActor")
    for voters, cast, expected, why in QUORUM_CASES:
        ballot = f"ballot-{fresh()}"
        electorate = [f"judge-{n}" for n in range(voters)]
        invoke(app, ballot_t, ballot, "Open", {"question": "refund?", "electorate": electorate, "seconds": 30})
        judges = iter(electorate)
        for choice, count in cast.items():
            for _ in range(count):
                invoke(app, ballot_t, ballot, "Vote", {"voter": next(judges), "choice": choice})
        decided = invoke(app, ballot_t, ballot, "Result")["decision"]
        assert decided == expected, f"{voters} voters, votes {cast}: the ballot says {decided!r}; {why}"
    return f"{len(QUORUM_CASES)} ballots, each decided by a majority and only by one"


# -- 8. scale -----------------------------------------------------------------------


@check(
    "auctions at scale",
    hint="the scale cell opens auctions, so it needs exercise 4; run it to the end: "
    "samples gets one row per auction size, up to 1,000 bidders",
)
def scale(samples: Sequence[dict]) -> str:
    rows = list(samples or [])
    assert rows, "no samples recorded: run the scale cell"
    sizes = [int(row.get("bidders") or 0) for row in rows]
    assert max(sizes) >= 1000, f"the largest auction had {max(sizes)} bidders; go to 1,000"
    for row in rows:
        assert row.get("bids") == row.get("bidders"), f"{row.get('bids')} bids counted of {row.get('bidders')} bidders"
        assert row.get("winner"), f"the auction with {row.get('bidders')} bidders has no winner"
    return f"{len(rows)} auction sizes up to {max(sizes):,} bidders, each with one winner and every bid counted"
