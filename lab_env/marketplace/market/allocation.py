"""Who sells an order: discovery by capability, then lab 06's contract net.

When the market is stocked, each seller registers a card in the market's
directory (a DirectoryActor whose id is the capability ``sell:<product>``)
stating its price and delivery days for that product. An order's first step
finds the cards for its product and runs a contract net over them: every card
is a proposal, the lowest price wins, then the fastest delivery, then the
first registered (lab_env.marketplace.coordination.contract_net's rule); the others are
rejected. The winner negotiates with the buyer and is paid when the order
ships.

Pure logic: the society's ``allocate`` activity does the reading, so the
workflow only ever sees the recorded award.
"""

from __future__ import annotations

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


def award(order_id: str, cards: list[dict]) -> dict:
    """The contract net over ``cards`` (in the order they were found): the seller awarded
    (None if nobody lists the product) and the sellers told no."""
    task = Task(order_id)
    for card in cards:
        task.propose(card["id"], float(card["price"]), int(card["days"]))
    winner = task.award()
    return {
        "seller": winner,
        "proposals": len(task.proposals),
        "rejected": [who for who, message in task.messages if message == "reject"],
    }
