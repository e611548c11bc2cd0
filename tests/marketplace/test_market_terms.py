"""The terms the market gives each order's buyer and seller: their own, so deals
differ; the seller's floor is its card's price; and they overlap exactly where
`deal_possible` says, whichever seller wins (pure: no stack)."""

from __future__ import annotations

import pytest

from lab_env.marketplace.agents.offer_policy import RulePolicy, Situation
from lab_env.marketplace.market import control


def _rule_deal(cat: control.Catalog, n: int, price: float | None = None) -> float | None:
    buyer, seller = control._limits(cat, n, price)
    for r in range(cat.rounds):
        bid = RulePolicy().offer(Situation("buyer", "x", r, cat.rounds, buyer["opening"], buyer["limit"], ()))
        ask = RulePolicy().offer(Situation("seller", "x", r, cat.rounds, seller["opening"], seller["limit"], ()))
        if bid >= ask:
            return round((bid + ask) / 2, 2)
    return None


@pytest.mark.parametrize("rounds", [1, 3, 5])
def test_a_deal_is_struck_exactly_where_the_limits_overlap(rounds):
    cat = control.Catalog(rounds=rounds)
    for n in range(63):
        for price in control.card_prices(cat, n):  # reputation may award any card listing the product
            buyer, seller = control._limits(cat, n, price)
            assert buyer["opening"] <= buyer["limit"] and seller["opening"] >= seller["limit"], (n, buyer, seller)
            assert seller["limit"] == price, "the seller's floor is its card's price"
            deal = _rule_deal(cat, n, price)
            assert (deal is not None) == control.deal_possible(n), (n, price, buyer, seller)
            assert deal is None or price <= deal <= buyer["limit"], (n, price, deal)


def test_agents_differ_so_deals_differ():
    cat = control.Catalog()
    prices = [p for p in (_rule_deal(cat, n) for n in range(21)) if p is not None]
    assert len(set(prices)) >= 10 and max(prices) - min(prices) >= 5, prices


def test_order_0_keeps_the_reference_terms():
    # The tests that script a model's offers are written against these.
    assert control._limits(control.Catalog(), 0) == (
        {"opening": 70.0, "limit": 110.0},
        {"opening": 130.0, "limit": 90.0},
    )


def test_a_cheaper_card_sells_for_less():
    cat = control.Catalog(rounds=4)
    for n in range(21):
        if control.deal_possible(n):
            deals = [_rule_deal(cat, n, price) for price in sorted(set(control.card_prices(cat, n)))]
            assert deals == sorted(deals) and deals[0] < deals[-1], (n, deals)
