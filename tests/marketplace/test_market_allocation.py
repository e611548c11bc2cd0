"""Allocation's pure rules (lab_env.marketplace.market.allocation): which sellers list a
product, and the contract net's award over their cards. tests/marketplace/test_market.py
runs the same through the market's directory and workflows on the live stack."""

from __future__ import annotations

from lab_env.marketplace.market.allocation import OFFERS_PER_PRODUCT, award, seller_cards

SELLERS = [f"seller-{k}" for k in range(5)]


def _card(seller: str, price: float, days: int) -> dict:
    return {"id": seller, "capability": "sell:kite", "price": price, "days": days}


def test_the_lowest_price_wins_and_every_other_seller_is_rejected():
    got = award("o-1", [_card("a", 99.0, 1), _card("b", 91.5, 3), _card("c", 95.0, 1)])
    assert got == {"seller": "b", "proposals": 3, "rejected": ["c", "a"]}


def test_equal_prices_go_to_the_fastest_delivery_then_to_the_first_card():
    assert award("o-2", [_card("a", 90.0, 3), _card("b", 90.0, 2), _card("c", 90.0, 2)])["seller"] == "b"
    assert award("o-3", [_card("c", 90.0, 2), _card("b", 90.0, 2)])["seller"] == "c"


def test_nobody_listing_the_product_awards_nobody():
    assert award("o-4", []) == {"seller": None, "proposals": 0, "rejected": []}


def test_each_product_is_listed_by_distinct_sellers_and_winners_differ_across_products():
    winners, decided_by_terms = set(), 0
    for n in range(10):
        cards = seller_cards(f"m-product-{n}", n, SELLERS, 100.0)
        assert len({c["id"] for c in cards}) == len(cards) == OFFERS_PER_PRODUCT
        assert all(c["capability"] == f"sell:m-product-{n}" and 85 <= c["price"] <= 110 for c in cards)
        winner = award(f"o-{n}", sorted(cards, key=lambda c: c["id"]))["seller"]
        winners.add(winner)
        decided_by_terms += winner != min(c["id"] for c in cards)
    assert len(winners) > 1, "one seller wins every product"
    assert decided_by_terms, "the first card always wins: the sellers' prices and days decide nothing"
    assert len(seller_cards("m-product-0", 0, SELLERS[:2], 100.0)) == 2  # fewer sellers than offers per product
