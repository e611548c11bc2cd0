"""The marketplace's mediator agent for the agent homes (lab 05): it hosts the
buyer and seller negotiator actors and a workflow that haggles between them,
one side at a time, round by round, until the bid meets the ask.

    LAB_WORKFLOW_MODULE=lab_env.marketplace.agents.mediator uvicorn lab_env.runtime.workflows.host:app --port ...

Lab 04 builds the faster mediator (both offers of a round at once, and a
deadline); this one is the plain reference the homes package and run.
"""

from __future__ import annotations

import dapr.ext.workflow as wf
from dapr.actor import ActorId, ActorProxy

from lab_env.marketplace.agents.market_actors import BuyerAgent, NegotiatorInterface, SellerAgent
from lab_env.runtime.actors import actor_type

wfr = wf.WorkflowRuntime()
ACTORS = [BuyerAgent, SellerAgent]


@wfr.activity(name="offer")
async def offer(ctx, ask: dict) -> float:
    """One side's offer for a round (the actor remembers it: a retry gets the same price)."""
    kind = "BuyerAgent" if ask["role"] == "buyer" else "SellerAgent"
    return await ActorProxy.create(actor_type(kind), ActorId(ask["agent"]), NegotiatorInterface).Offer(ask["round"])


def settle(bid: float, ask: float) -> float | None:
    """The agreed price (halfway) once the bid meets the ask."""
    return round((bid + ask) / 2, 2) if bid >= ask else None


@wfr.workflow(name="haggle")
def haggle(ctx: wf.DaprWorkflowContext, deal: dict):
    """deal: buyer, seller (actor ids, already Setup) and rounds."""
    for round_no in range(deal["rounds"]):
        bid = yield ctx.call_activity(offer, input={"role": "buyer", "agent": deal["buyer"], "round": round_no})
        ask = yield ctx.call_activity(offer, input={"role": "seller", "agent": deal["seller"], "round": round_no})
        price = settle(bid, ask)
        if price is not None:
            return {"agreed": True, "price": price, "rounds": round_no + 1}
    return {"agreed": False, "rounds": deal["rounds"]}
