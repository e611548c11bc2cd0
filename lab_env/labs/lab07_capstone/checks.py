"""Checks for the capstone: the whole marketplace, with the learner's pieces in it.

Both checks drive the learner's running market (``lab_env.marketplace.market``) with
orders of their own, numbered after the learner's, and judge what the real
society did: the negotiations' workflow outputs, the order actors' settled
outcomes, the wallets' and products' state, and the events on Kafka.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from lab_env.core.probes import Waiting, tcp_open, wait_all
from lab_env.labs.checks import call_learner, check
from lab_env.marketplace.market import control
from lab_env.runtime import workflows
from lab_env.runtime.apps import DaprApp
from lab_env.runtime.kafka import read_topic

PATIENCE = 600.0  # safety net for a stuck order or an endless loop; the orders here settle in seconds
NEGOTIATIONS = 10
DRILL_ORDERS = 20
HOLD_S = 600.0  # how long the drill's held event waits for its host's kill: a safety net, the kill comes at once


def _number(order_id: str) -> int:
    return int(order_id.rsplit("-", 1)[1])


def _deal(market: control.Market, order_id: str) -> dict:
    return workflows.output(workflows.read_state(market.app, f"{order_id}-deal")) or {}


@check(
    "negotiator",
    hint="in my_offers.py, Negotiator.offer returns a number between s.opening and s.limit that never "
    "steps back from your last offer (s.own_offers()), and reaches s.limit by the last round; "
    "start the market with market.up(..., policy=workspace() / 'my_offers.py')",
)
def negotiator(app: DaprApp) -> str:
    market = control.attach(app.app_id)
    ids = control.place_orders(market, NEGOTIATIONS)
    outcomes = control.wait_orders(market, ids, timeout=PATIENCE)
    deals = {i: _deal(market, i) for i in ids}
    rounds = [r for d in deals.values() for r in d.get("rounds", [])]
    rejected = [why for r in rounds for why in r.get("rejected", [])]
    unfinished = next((why for why in rejected if "NotImplementedError" in why), None)
    if unfinished:
        raise NotImplementedError(unfinished)
    assert not rejected, f"{len(rejected)} of {2 * len(rounds)} offers were rejected, the first: {rejected[0]}"
    by = Counter(b for r in rounds for b in r["by"])
    assert set(by) == {"yours"}, (
        f"the offers were made by {dict(by)}, not by your negotiator: start the market with policy=<your file>"
    )
    could = [i for i in ids if control.deal_possible(_number(i))]
    missed = [i for i in could if not deals[i].get("agreed")]
    assert not missed, (
        f"{len(missed)} of {len(could)} orders whose buyer and seller could agree ended without a deal "
        f"(e.g. {missed[0]}: {[(r['bid'], r['ask']) for r in deals[missed[0]]['rounds']]}): "
        "concede until you reach your limit in the last round"
    )
    assert all(o and o["status"] in control.TERMINAL for o in outcomes.values()), f"orders unsettled: {outcomes}"
    sheet = control.audit(market, PATIENCE)
    assert sheet["balanced"], f"the books do not balance: {sheet}"
    return f"{len(ids)} orders negotiated by your negotiator alone, a deal wherever one was possible, the books balance"


@check(
    "books from events",
    hint="revenue(events): keep one event per order id (the stream is at least once), "
    "then sum 'total' by 'product' over the events whose status is 'completed'",
)
def books_from_events(revenue: Callable[[list[dict]], dict], app: DaprApp) -> str:
    empty = call_learner(
        revenue, [], timeout=PATIENCE, what="revenue"
    )  # an unfinished stub fails here, before the drill
    assert empty in ({}, None) or (isinstance(empty, dict) and not any(empty.values())), (
        f"revenue([]) returned {empty!r}: no events, no revenue"
    )
    market = control.attach(app.app_id)
    assert len(market.hosts) >= 2, (
        f"market {market.name} runs on one host, so killing it stops the society: "
        "start it on two (market.up(..., hosts=2)) and run this check again"
    )
    for host in market.hosts:  # one killed before (the notebook's drill) comes back: this drill kills a live one
        if not tcp_open("127.0.0.1", host.http_port, timeout=2):
            workflows.restart(host)
    # First an order whose buyer can pay and whose shipment goes: its event, once sent, is held unmarked on
    # whichever host settles it, and that host is killed then, with the drill's other orders on their way.
    after = max((_number(i) + 1 for i in control.orders_placed(market)), default=0)
    n = next(k for k in range(after, after + 7) if control.deal_possible(k))
    (held,) = control.place_orders(market, 1, start=n, hold_announce=HOLD_S)
    ids = control.place_orders(market, DRILL_ORDERS, fail_every=4)
    holder: list[str] = []

    def holding() -> bool:
        holder[:] = [(control.outcomes(market, [held])[held] or {}).get("held_on") or ""]
        return bool(holder[0])

    wait_all(
        {f"{held}'s event held": Waiting(holding, fix="look at the market app's log")},
        PATIENCE,
        "the drill",
        progress=False,
    )
    victim = next((host for host in market.hosts if host.name == holder[0]), None)
    assert victim is not None, f"{held}'s event is held on {holder[0]!r}, no host of market {market.name}"
    victim.crash()  # app and sidecar SIGKILLed with orders in every stage; nobody restarts it
    try:
        control.wait_orders(market, [*ids, held], timeout=PATIENCE)  # the other host takes its agents over
        sheet = control.audit(market, PATIENCE)
    finally:
        workflows.restart(victim)  # the market whole again for the cells after this one
    assert not sheet["lost"] and not sheet["double"] and sheet["balanced"], f"the society did not heal: {sheet}"

    every = control.outcomes(market, control.orders_placed(market))
    truth: Counter = Counter()
    for outcome in every.values():
        if outcome and outcome["status"] == "completed":
            truth[outcome["product"]] += outcome["total"]
    events = [r.value["data"] for r in read_topic(market.topic)]
    announced = Counter(e["order"] for e in events)
    missing = {*ids, held} - set(announced)
    assert not missing, f"{len(missing)} of the drill's orders were never announced on Kafka"
    # Not the learner's doing: the drill itself failed to make a duplicate.
    assert announced[held] >= 2, f"{held}'s event went out once, though its host was killed before marking it sent"
    # And what a consumer restarted before committing reads again: a few events once more, shuffled in.
    # (The held order may end without a deal, with a learner's negotiator: its repeat then adds nothing.)
    shuffle = random.Random(len(events))
    events = events + shuffle.sample(events, max(3, len(events) // 5))
    shuffle.shuffle(events)
    got = call_learner(revenue, events, timeout=PATIENCE, what="revenue")
    assert isinstance(got, dict), f"revenue(events) returned a {type(got).__name__}, not a dict of product: revenue"
    for product in sorted(set(truth) | set(got)):
        mine, real = round(float(got.get(product, 0) or 0), 2), round(truth[product], 2)
        assert mine == real, f"revenue of {product}: {mine} by your count, {real} by the order actors: " + (
            f"an order counted twice? events arrive at least once ({held}'s went out {announced[held]} times: "
            "its host was killed after sending it, before marking it sent; and a consumer may read one again)"
            if mine > real
            else "an order missing?"
        )
    return (
        f"the society outlived one of its {len(market.hosts)} hosts ({DRILL_ORDERS + 1} orders, none lost or doubled), "
        f"and your revenue matches the order actors' outcomes, with {held}'s event sent twice by the kill "
        "and some events read again"
    )


SUITE_PATIENCE = 300.0  # a suite restarts a host in seconds; this only stops an endless loop


@check(
    "validation suite",
    hint="probe each promise of the specification on a product of its own: its methods, its invariants, "
    "what survives a restarted host, what a repeated call does",
)
def validation_suite(problems: Callable[[str], list]) -> str:
    from lab_env.core.names import unique_name
    from lab_env.labs.checks import fresh
    from lab_env.models import trial
    from lab_env.models.candidates import SPECIFICATIONS

    spec = SPECIFICATIONS["product agent"]
    caught = 0
    # In an order of this run's own, on hosts named by chance: a suite must tell candidates apart by what they do.
    for candidate in random.sample(spec.candidates, len(spec.candidates)):
        with trial.hosted(candidate.source, unique_name(f"candidate-{fresh()}")) as host:
            found = call_learner(problems, host, timeout=SUITE_PATIENCE, what="problems")
        assert isinstance(found, list) and all(isinstance(p, str) for p in found), (
            f"problems returned {str(found)[:80]}: return a list of problems found, each a string ([] for none)"
        )
        if candidate.bug is None:
            assert not found, (
                f"your suite finds {found[0]!r} in the candidate that meets the specification: "
                "a suite that refuses correct code sends you back to the model for nothing"
            )
        else:
            assert found, (
                f"your suite accepts the candidate {candidate.name!r}, which has a planted bug: {candidate.bug}"
            )
            caught += 1
    return f"{len(spec.candidates)} candidates on live hosts: the correct one accepted, all {caught} planted bugs found"


# The range of the market's card prices, as fractions of the list price (allocation.seller_cards).
CHEAPEST_CARD, DEAREST_CARD = 0.90, 1.05
FAILURE_ROUNDS = 3  # rounds of one order per product, for an unreliable seller to fail one


def _standing(market: control.Market, seller: str) -> dict:
    from lab_env.runtime.actors import invoke

    return invoke(market.app, market.actor("ReputationActor"), seller, "Standing")


@check(
    "trust",
    hint="a seller with no failure keeps trust 1; each failure lowers it, each delivery raises it, and it stays "
    "above 0; one failure must leave a card at 0.90 of the list price behind one at 1.05. "
    "Start the market with market.up(..., trust=trust)",
)
def reputation(trust: Callable[[dict], float], app: DaprApp) -> str:
    def rule(delivered: int, failed: int) -> float:
        standing = {"delivered": delivered, "failed": failed}
        value = call_learner(trust, standing, timeout=PATIENCE, what="trust")
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"trust({standing}) returned {value!r}, not a number"
        )
        assert 0 < value <= 1, f"trust({standing}) is {value}: a trust lies above 0 and at most 1"
        return float(value)

    newcomer = rule(0, 0)
    assert newcomer == 1, (
        f"a seller with no record has trust {newcomer}, not 1: until a seller fails, the cheapest card should win"
    )
    once = rule(0, 1)
    assert CHEAPEST_CARD / once > DEAREST_CARD, (
        f"after one failure a seller's trust is {once}: its card at {CHEAPEST_CARD} of the list price still "
        f"beats a reliable seller's at {DEAREST_CARD}"
    )
    for delivered in (0, 1, 5, 20):
        row = [rule(delivered, failed) for failed in range(4)]
        assert all(a >= b for a, b in zip(row, row[1:], strict=False)), (
            f"with {delivered} deliveries, more failures raised the trust: {row} for 0 to 3 failures"
        )
    for delivered in (1, 5, 20):
        clean = rule(delivered, 0)
        assert clean == 1, f"a seller with {delivered} deliveries and no failure has trust {clean}, not 1"
    for failures in (1, 3):
        column = [rule(delivered, failures) for delivered in (0, 1, 5, 20)]
        assert all(a <= b for a, b in zip(column, column[1:], strict=False)), (
            f"with {failures} failures, more deliveries lowered the trust: {column} for 0, 1, 5, 20 deliveries"
        )

    market = control.attach(app.app_id)
    assert market.trust_rule == "yours", (
        "this market weighs the cards with the course's trust, not yours: start it with market.up(..., trust=trust)"
    )
    unreliable = {market.wallet("seller", k) for k in market.catalog.unreliable}
    assert unreliable, "this market has no unreliable seller to find out: start it with Catalog(..., unreliable=(0,))"
    products = market.catalog.products
    # Orders, one per product, until an unreliable seller has been awarded one and failed it (an order that ends
    # without a deal or out of stock never reaches the shipment, so it may take more than one round).
    failed: set[str] = set()
    for _ in range(FAILURE_ROUNDS):
        control.wait_orders(market, control.place_orders(market, products), timeout=PATIENCE)
        failed = {s for s in unreliable if _standing(market, s)["failed"] >= 1}
        if failed:
            break
    assert failed, (
        f"no unreliable seller was awarded an order and failed it in {FAILURE_ROUNDS * products} orders: give one "
        "the cheapest card of a product (seller 0 of a market with 3 sellers does, for product 0)"
    )
    later = control.wait_orders(market, control.place_orders(market, 2 * products), timeout=PATIENCE)
    listed_by = {market.product(n): {c["id"] for c in control.seller_cards(market, n)} for n in range(products)}
    still = [
        (i, o["seller"])
        for i, o in later.items()
        if o and o.get("seller") in failed and listed_by[o["product"]] - unreliable
    ]
    assert not still, (
        f"{still[0][1]} never delivers, yet won {still[0][0]} after failing: "
        "a seller that failed should lose to the others' cards"
    )
    sheet = control.audit(market, PATIENCE)
    assert sheet["balanced"], f"the books do not balance: {sheet}"
    return (
        f"your trust keeps {len(failed)} unreliable seller(s) from winning again "
        f"({len(later)} orders after their failure), the books balance"
    )
