"""Who sells an order: discovery by capability, then lab 06's contract net.

When the market is stocked, each seller registers a card in the market's
directory (a DirectoryActor whose id is the capability ``sell:<product>``)
stating its price and delivery days for that product. An order's first step
finds the cards for its product and runs a contract net over them: every card
is a proposal, the lowest price wins, then the fastest delivery, then the
first registered (lab_env.marketplace.coordination.contract_net's rule); the others are
rejected. The winner negotiates with the buyer and is paid when the order
ships. A card's price binds its seller: it is the lowest price the seller
accepts in the negotiation that follows (``seller_terms``), so a cheaper card
wins more orders and sells each for less.

Reputation: each seller's record of delivered and failed orders (a
ReputationActor per seller) weighs its card. The contract net ranks
proposals by price divided by the seller's trust, so a newcomer that fails
its first order needs a card half the others' price to win again; since it
then wins nothing, nothing forgives it, and it keeps losing wherever a
seller without failures sells. A seller with many deliveries loses less by
one failure, and deliveries earn trust back for a seller that still wins
(the only one listing a product, say).

Pure logic: the society's ``allocate`` activity does the reading, so the
workflow only ever sees the recorded award.
"""

from __future__ import annotations

from collections.abc import Callable

from lab_env.marketplace.coordination.contract_net import Task

OFFERS_PER_PRODUCT = 3  # sellers listing each product (fewer if the market has fewer)


def capability(product: str) -> str:
    return f"sell:{product}"


def seller_cards(product: str, product_index: int, sellers: list[str], list_price: float) -> list[dict]:
    """The cards of the sellers that list product number ``product_index``: seller k lists
    products k, k-1, ... (OFFERS_PER_PRODUCT of them), at a price and delivery of its own."""
    cards = []
    for j in range(min(OFFERS_PER_PRODUCT, len(sellers))):
        k = (product_index + j) % len(sellers)
        # Spread so different products have different winners, with some equal prices (ties by days).
        factor = 0.9 + 0.05 * ((3 * k + product_index) % 4)
        cards.append(
            {
                "id": sellers[k],
                "capability": capability(product),
                "price": round(list_price * factor, 2),
                "days": 1 + (k + 2 * product_index) % 3,
            }
        )
    return cards


def seller_terms(card: dict, opening: float, rounds: int) -> dict:
    """The awarded seller's terms for one order's negotiation: it never goes below its card's price (what it
    proposed in the contract net), and opens at ``opening`` (its own markup for this order) or at that price."""
    price = float(card["price"])
    return {"opening": max(round(opening, 2), price), "limit": price, "rounds": rounds}


def trust(standing: dict | None) -> float:
    """How far a seller's word holds, from 1 (no failure yet) down: (delivered + 1) / (delivered + failed + 1).
    One failure halves a newcomer's trust; every delivery after it earns some back."""
    if not standing:
        return 1.0
    delivered, failed = int(standing.get("delivered", 0)), int(standing.get("failed", 0))
    return (delivered + 1) / (delivered + failed + 1)


def weigh(rule: Callable[[dict], float], standing: dict) -> float:
    """``rule``'s trust for ``standing``, refused unless it is a number in (0, 1]: a learner's rule is called here."""
    value = rule(standing)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"trust({standing}) returned {value!r}: it must be a number above 0 and at most 1")
    return float(value)


def award(
    order_id: str, cards: list[dict], standings: dict[str, dict] | None = None, rule: Callable[[dict], float] = trust
) -> dict:
    """The contract net over ``cards`` (in the order they were found), each price weighed by its seller's
    trust (``standings``: seller -> its ReputationActor's standing, no record for a seller never awarded;
    ``rule`` turns one into a trust): the seller awarded (None if nobody lists the product), the sellers
    told no, and the trust of every seller trusted less than fully."""
    standings = standings or {}
    weights = {c["id"]: weigh(rule, standings.get(c["id"]) or {"delivered": 0, "failed": 0}) for c in cards}
    task = Task(order_id)
    for card in cards:
        task.propose(card["id"], float(card["price"]) / weights[card["id"]], int(card["days"]))
    winner = task.award()
    return {
        "seller": winner,
        "price": next((float(c["price"]) for c in cards if c["id"] == winner), None),
        "proposals": len(task.proposals),
        "rejected": [who for who, message in task.messages if message == "reject"],
        "distrusted": {who: round(w, 3) for who, w in weights.items() if w < 1},
    }
