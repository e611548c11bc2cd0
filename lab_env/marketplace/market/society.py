"""The marketplace app: every agent of the society as an actor, and the
protocols between them as workflows. Run it with start_agents_app (or
``lab-env market up``):

    purchase      one buyer's order: find the sellers of its product and award it to
                  one by contract net (allocation.py), negotiate a price with the
                  winner, then the order saga
    negotiate     rounds of a bid and an ask decided at once (two activities),
                  until they meet or the rounds run out
    order_saga    reserve the stock, debit the buyer, ship (the carrier app,
                  by service invocation) and credit the seller; a failed
                  step undoes the done ones in reverse

Offers come from lab_env.marketplace.agents.offer_policy inside the ``decide_offer``
activity only: with OPENAI_API_KEY in the secret store, a model decides (a
bad answer is rejected with its reason and the rule decides instead);
without, the rule. Either way the negotiator actor records the offer, so a
replay or a re-run activity never changes an offer once made.

Each order's outcome is settled exactly once in its OrderActor and announced
on Kafka (``MARKET_TOPIC``, through Dapr's kafka-pubsub) at least once: a
crash between the two makes the re-run announce again, and the event's
order id lets consumers drop the repeat. Stock reserved and released goes
the same way to ``MARKET_INVENTORY_TOPIC``, keyed by product.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
import httpx
from dapr.actor import ActorId, ActorProxy
from dapr.actor.client.proxy import ActorFactoryBase
from dapr.clients.http.dapr_actor_http_client import DaprActorHttpClient
from dapr.serializers import DefaultJSONSerializer

from lab_env.marketplace.agents.directory import DirectoryActor, DirectoryInterface
from lab_env.marketplace.agents.market_actors import (
    BuyerAgent,
    NegotiatorInterface,
    ProductActor,
    ProductInterface,
    SellerAgent,
)
from lab_env.marketplace.agents.offer_policy import (
    FilePolicy,
    OfferPolicy,
    OfferRejected,
    RulePolicy,
    Situation,
    choose_policy,
    load_file,
)
from lab_env.marketplace.market import allocation
from lab_env.marketplace.market.ledger import (
    OrderActor,
    OrderInterface,
    ReputationActor,
    ReputationInterface,
    WalletActor,
    WalletInterface,
)
from lab_env.runtime import sidecar
from lab_env.runtime.actors import actor_type
from lab_env.runtime.tracing import context as trace_context

wfr = wf.WorkflowRuntime()
ACTORS = [ProductActor, BuyerAgent, SellerAgent, WalletActor, OrderActor, DirectoryActor, ReputationActor]
# The market's own sidecar; it requires its API token (control.up sets it for both): sent on every call.
SIDECAR = sidecar.Sidecar.from_env()
PUBSUB = "kafka-pubsub"
# The market's Kafka topics (control.up sets them): order outcomes, and stock reserved and released.
ORDERS_TOPIC = os.environ.get("MARKET_TOPIC")
HOST = os.environ.get("MARKET_HOST", "")  # this host's process name: which one the drill kills
INVENTORY_TOPIC = os.environ.get("MARKET_INVENTORY_TOPIC")
# The carrier's app id (control.up starts it beside the market): the ship step calls it.
CARRIER = os.environ.get("MARKET_CARRIER", "carrier")
SECRET_STORE, KEY_NAME = "secretstore", "OPENAI_API_KEY"
# Transient failures (a host or Redis restarting) are retried for about 40 s; a step that keeps
# failing fails the saga, which compensates.
RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=200),
    max_number_of_attempts=12,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=5),
)
# Announcing an outcome already settled: retried for minutes (a broker restart), since giving up
# would leave a settled order unannounced.
ANNOUNCE_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=500),
    max_number_of_attempts=40,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=5),
)
log = logging.getLogger("market")
# Event publishes and the carrier's invocation awaited on one shared client; "0" is bench/market_levers.py's
# reference (a blocking publish, a new client per shipment).
ASYNC_SIDECAR_CALLS = os.environ.get("LAB_ASYNC_SIDECAR_CALLS", "1") != "0"
# The sync sidecar calls of every activity share the process's one keep-alive client (sidecar.client): a new
# httpx client costs about 50 ms of CPU here (it loads the CA bundle), which made the market app's CPU the bottleneck.
_SSL = ssl.create_default_context()  # for the per-call async clients: no CA bundle load per call


class _TracedProxies(ActorFactoryBase):
    """Actor proxies whose calls carry the current trace context, so an activity's actor calls join the
    order's trace (the SDK's default factory sends none)."""

    def __init__(self) -> None:
        self._serializer = DefaultJSONSerializer()
        self._client = DaprActorHttpClient(self._serializer, headers_callback=trace_context.headers)

    def create(self, actor_type: str, actor_id: ActorId, actor_interface=None) -> ActorProxy:
        return ActorProxy(self._client, actor_type, actor_id, actor_interface, self._serializer)


_PROXIES = _TracedProxies()


def _proxy(kind: str, actor_id: str, interface):
    return _PROXIES.create(actor_type(kind), ActorId(actor_id), interface)


# -- offers -----------------------------------------------------------------------------

_policy: OfferPolicy | None = None


class _Unloadable:
    """A learner's policy file that does not load: every offer is rejected with the reason."""

    name = "yours"

    def __init__(self, why: str) -> None:
        self.why = why

    def offer(self, situation: Situation) -> float:
        raise OfferRejected(f"your policy did not load: {self.why}")


def policy() -> OfferPolicy:
    """The model when the secret store has a key, else the learner's policy file
    (MARKET_POLICY), else the rule; read once per process."""
    global _policy
    if _policy is None:
        key = None
        try:
            reply = sidecar.get(SIDECAR, sidecar.secret_path(SECRET_STORE, KEY_NAME), timeout=10)
            key = reply.json().get(KEY_NAME) if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            key = None  # no secret store: offline
        _policy = choose_policy(key, os.environ.get("OPENAI_BASE_URL"))
        if not key and os.environ.get("MARKET_POLICY"):
            try:
                _policy = FilePolicy(os.environ["MARKET_POLICY"])
            except Exception as err:  # a learner's file: its error is named on every offer
                _policy = _Unloadable(f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}")
    return _policy


@wfr.activity(name="decide_offer")
async def decide_offer(ctx, ask: dict) -> dict:
    """One side's offer for a round: decided by the policy, kept by the agent."""
    kind = "BuyerAgent" if ask["role"] == "buyer" else "SellerAgent"
    agent = _proxy(kind, ask["agent"], NegotiatorInterface)
    terms = await agent.Terms()
    if str(ask["round"]) in terms["offers"]:  # decided before a crash: never ask the model again
        return {"price": terms["offers"][str(ask["round"])], "by": "recorded"}
    situation = Situation(
        ask["role"],
        ask["item"],
        ask["round"],
        terms["rounds"],
        terms["opening"],
        terms["limit"],
        tuple(ask.get("history", ())),
    )
    chosen, by, rejected = policy(), policy().name, None
    try:
        price = chosen.offer(situation)
    except OfferRejected as err:  # never applied: the rule decides this round
        rejected, by, price = str(err), "rule", RulePolicy().offer(situation)
        log.warning("offer of %s for round %s rejected: %s", ask["agent"], ask["round"], rejected)
    price = await agent.Record({"round": ask["round"], "price": price})
    return {"price": price, "by": by, "rejected": rejected}


@wfr.workflow(name="negotiate")
def negotiate(ctx: wf.DaprWorkflowContext, deal: dict):
    """deal: buyer, seller (negotiator ids, already Setup), item, rounds."""
    rounds: list[dict] = []
    for round_no in range(deal["rounds"]):
        asks = [
            {"role": role, "agent": deal[role], "item": deal["item"], "round": round_no, "history": rounds}
            for role in ("buyer", "seller")
        ]
        bid, ask = yield wf.when_all([ctx.call_activity(decide_offer, input=a, retry_policy=RETRY) for a in asks])
        rounds.append(
            {
                "round": round_no,
                "bid": bid["price"],
                "ask": ask["price"],
                "by": [bid["by"], ask["by"]],
                "rejected": [r for r in (bid.get("rejected"), ask.get("rejected")) if r],
            }
        )
        ctx.set_custom_status(json.dumps({"stage": "negotiating", "rounds": rounds}))
        if bid["price"] >= ask["price"]:
            return {"agreed": True, "price": round((bid["price"] + ask["price"]) / 2, 2), "rounds": rounds}
    return {"agreed": False, "rounds": rounds}


# -- allocation: who sells -------------------------------------------------------------


@wfr.activity(name="allocate")
async def allocate(ctx, order: dict) -> dict:
    """The sellers listing the order's product (the directory), their reputations, and the contract net's award;
    then the awarded seller's negotiator is briefed from its card (a re-run briefs it again, before any offer)."""
    cards = await _proxy("DirectoryActor", allocation.capability(order["product"]), DirectoryInterface).Find()
    sellers = sorted({card["id"] for card in cards})
    found = await asyncio.gather(*(_proxy("ReputationActor", s, ReputationInterface).Standing() for s in sellers))
    standings = dict(zip(sellers, found, strict=True))
    if not os.environ.get("MARKET_TRUST"):  # the course's rule: any error of its own is a bug, and raised
        awarded = allocation.award(order["id"], cards, standings)
    else:
        try:
            awarded = allocation.award(order["id"], cards, standings, trust_rule())
        except Exception as err:  # a learner's rule: its error goes with the award, and no record counts
            why = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:150]}"
            log.warning("trust rule failed for %s: %s", order["id"], why)
            awarded = {**allocation.award(order["id"], cards), "trust_error": why}
    if awarded["seller"] is not None:
        card = next(c for c in cards if c["id"] == awarded["seller"])
        terms = allocation.seller_terms(card, order.get("seller_opening", 0.0), order["rounds"])
        await _proxy("SellerAgent", order["seller"], NegotiatorInterface).Setup(terms)
    return awarded


_trust_rule = None


def trust_rule():
    """The learner's ``trust`` from their file (MARKET_TRUST), else the course's (allocation.trust); read once."""
    global _trust_rule
    if _trust_rule is None:
        path = os.environ.get("MARKET_TRUST")
        _trust_rule = load_file(path).trust if path else allocation.trust
    return _trust_rule


# -- the order saga ----------------------------------------------------------------------


@wfr.activity(name="reserve")
async def reserve(ctx, order: dict) -> dict:
    held = await _proxy("ProductActor", order["product"], ProductInterface).Reserve(
        {"order_id": order["id"], "quantity": order["quantity"]}
    )
    if held["ok"]:  # a re-run announces again; consumers count an (order, kind) once
        await _publish(
            INVENTORY_TOPIC,
            order["product"],
            {"product": order["product"], "order": order["id"], "kind": "reserved", "change": -order["quantity"]},
        )
    return held


@wfr.activity(name="release")
async def release(ctx, order: dict) -> dict:
    """Only ever after a reserve that held: the order's quantity goes back (a re-run releases nothing more)."""
    released = await _proxy("ProductActor", order["product"], ProductInterface).Release(order["id"])
    await _publish(
        INVENTORY_TOPIC,
        order["product"],
        {"product": order["product"], "order": order["id"], "kind": "released", "change": order["quantity"]},
    )
    return released


@wfr.activity(name="debit")
async def debit(ctx, order: dict) -> dict:
    return await _proxy("WalletActor", order["buyer_wallet"], WalletInterface).Debit(
        {"order_id": order["id"], "amount": order["total"]}
    )


@wfr.activity(name="refund")
async def refund(ctx, order: dict) -> dict:
    return await _proxy("WalletActor", order["buyer_wallet"], WalletInterface).Refund(order["id"])


@wfr.activity(name="ship")
async def ship(ctx, order: dict) -> dict:
    """The carrier (an app of its own, by service invocation) ships the parcel, then the seller is paid.
    A refusal is an answer ({"ok": False}); anything else that fails is retried. What the seller did
    (delivered, or never handed over the goods) goes on its record (ReputationActor)."""
    seller = _proxy("ReputationActor", order["seller_wallet"], ReputationInterface)
    if order["seller_wallet"] in order.get("unreliable", ()):  # a drill's seller that never delivers
        await seller.Record({"order_id": order["id"], "delivered": False})
        return {"ok": False, "reason": f"seller {order['seller_wallet']} never handed the goods to the carrier"}
    parcel = {
        "order": order["id"],
        "product": order["product"],
        "quantity": order["quantity"],
        "refuse": order.get("fail_at") == "ship",
    }  # a drill's planned failure: the carrier refuses it
    path = sidecar.invoke_path(CARRIER, "ship")
    if ASYNC_SIDECAR_CALLS:  # awaited on the worker loop's one keep-alive client
        reply = await sidecar.arequest("POST", SIDECAR, path, json=parcel, headers=trace_context.headers())
    else:  # bench/market_levers.py's reference: a client of its own per call, as before
        async with httpx.AsyncClient(timeout=30, verify=_SSL) as client:
            reply = await client.post(
                sidecar.url(SIDECAR, path), json=parcel, headers={**sidecar.headers(SIDECAR), **trace_context.headers()}
            )
    if reply.status_code == 422:
        return {"ok": False, "reason": reply.json().get("detail", reply.text)[:200]}
    if reply.status_code == 403:  # the carrier's access policy: retrying cannot help, and must not ship
        return {"ok": False, "reason": f"the carrier's access policy refused the market: {reply.text[:150]}"}
    reply.raise_for_status()
    await _proxy("WalletActor", order["seller_wallet"], WalletInterface).Credit(
        {"order_id": order["id"], "amount": order["total"]}
    )
    await seller.Record({"order_id": order["id"], "delivered": True})
    return {"ok": True, "tracking": reply.json()["tracking"]}


@wfr.activity(name="settle")
async def settle(ctx, outcome: dict) -> dict:
    """The outcome, once (the order actor keeps the first), then its event until it is marked sent."""
    hold = float(outcome.pop("hold_announce", 0) or 0)
    order = _proxy("OrderActor", outcome["order"], OrderInterface)
    settled = await order.Settle(outcome)
    if not settled.get("announced") and ORDERS_TOPIC:
        await _publish(
            ORDERS_TOPIC,
            outcome["order"],
            {k: v for k, v in settled.items() if k not in ("new", "repeats", "announced", "held_on")},
        )
        if hold and settled["new"]:  # a drill: sent, not yet marked; this host killed now, the re-run sends it again
            await order.Holding(HOST)
            await asyncio.sleep(hold)
        await order.Announced()
    return settled


async def _publish(topic: str | None, key: str, event: dict) -> None:
    """One event on the market's Kafka topic through Dapr's kafka-pubsub, partitioned by ``key``. Awaited: the
    broker's acknowledgement takes milliseconds, and every other activity of this host waits on a blocked loop."""
    if not topic:
        return
    call: dict[str, Any] = {
        "params": {"metadata.partitionKey": key},
        "content": json.dumps(event),
        "headers": {"content-type": "application/json", **trace_context.headers()},
    }
    path = sidecar.publish_path(PUBSUB, topic)
    if ASYNC_SIDECAR_CALLS:
        reply = await sidecar.arequest("POST", SIDECAR, path, timeout=30, **call)
    else:  # bench/market_levers.py's reference: the blocking call it was
        reply = sidecar.post(SIDECAR, path, timeout=30, **call)
    reply.raise_for_status()


def _drill(order: dict) -> dict:
    """What the settle activity takes of a drill's order (control.place_orders' hold_announce); never kept."""
    return {"hold_announce": order["hold_announce"]} if order.get("hold_announce") else {}


def _settle(ctx: wf.DaprWorkflowContext, outcome: dict):
    return ctx.call_activity(settle, input=outcome, retry_policy=ANNOUNCE_RETRY)


@wfr.workflow(name="order_saga")
def order_saga(ctx: wf.DaprWorkflowContext, order: dict):
    """order: id, product, quantity, price, buyer_wallet, seller_wallet, optionally fail_at, unreliable and
    hold_announce."""
    order = {**order, "total": round(order["price"] * order["quantity"], 2)}
    undo: list = []
    outcome = {
        "order": order["id"],
        "total": order["total"],
        "quantity": order["quantity"],
        "product": order["product"],
        "seller": order["seller_wallet"],
        **_drill(order),
    }
    try:
        ctx.set_custom_status(json.dumps({"stage": "reserve"}))
        held = yield ctx.call_activity(reserve, input=order, retry_policy=RETRY)
        if not held["ok"]:
            return (yield _settle(ctx, {**outcome, "status": "rejected", "reason": "out of stock"}))
        undo.append(release)
        ctx.set_custom_status(json.dumps({"stage": "debit"}))
        paid = yield ctx.call_activity(debit, input=order, retry_policy=RETRY)
        if not paid["ok"]:
            raise _Refused("not enough money")
        undo.append(refund)
        ctx.set_custom_status(json.dumps({"stage": "ship"}))
        shipped = yield ctx.call_activity(ship, input=order, retry_policy=RETRY)
        if not shipped["ok"]:
            raise _Refused(shipped["reason"])
    except (wf.TaskFailedError, _Refused) as err:
        ctx.set_custom_status(json.dumps({"stage": "compensating"}))
        for step in reversed(undo):
            yield ctx.call_activity(step, input=order, retry_policy=RETRY)
        return (yield _settle(ctx, {**outcome, "status": "compensated", "reason": str(err)[:200]}))
    return (yield _settle(ctx, {**outcome, "status": "completed", "price": order["price"]}))


class _Refused(Exception):
    """A step said no (no money): compensate like a failure."""


@wfr.workflow(name="purchase")
def purchase(ctx: wf.DaprWorkflowContext, order: dict):
    """order: id, buyer, seller (negotiators: the buyer's already Setup), product, quantity, rounds,
    buyer_wallet, seller_opening, optionally fail_at, unreliable (the wallets of sellers that never hand
    over the goods: a drill) and hold_announce (seconds its settled event waits unmarked: lab 07's drill).
    The seller's wallet is the contract net's winner, and its card's price is the seller negotiator's limit."""
    outcome = {
        "order": order["id"],
        "total": 0.0,
        "quantity": order["quantity"],
        "product": order["product"],
        **_drill(order),
    }
    ctx.set_custom_status(json.dumps({"stage": "allocating"}))
    awarded = yield ctx.call_activity(allocate, input=order, retry_policy=RETRY)
    if awarded["seller"] is None:
        return (yield _settle(ctx, {**outcome, "status": "rejected", "reason": f"no seller lists {order['product']}"}))
    ctx.set_custom_status(
        json.dumps({"stage": "negotiating", "seller": awarded["seller"], "rejected": awarded["rejected"]})
    )
    deal = yield ctx.call_child_workflow(
        negotiate,
        instance_id=f"{ctx.instance_id}-deal",
        input={"buyer": order["buyer"], "seller": order["seller"], "item": order["product"], "rounds": order["rounds"]},
    )
    if not deal["agreed"]:
        return (yield _settle(ctx, {**outcome, "status": "no deal", "seller": awarded["seller"]}))
    return (
        yield ctx.call_child_workflow(
            order_saga,
            instance_id=f"{ctx.instance_id}-saga",
            input={**order, "price": deal["price"], "seller_wallet": awarded["seller"]},
        )
    )
