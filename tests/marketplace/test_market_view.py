"""The marketplace's live view in a real browser (Debian's chromium, driven
by Playwright): the page loads from the market's loopback address, orders
complete on it as the workflows finish, a negotiation's offer curves are
drawn, and its charts show events per second over time, stock per product
and each seller's trust (a seller that never delivers falls with each
failure). The screenshot goes to test-artifacts/browser/market-view.png."""

from __future__ import annotations

import pytest

from lab_env import unique_name
from lab_env.marketplace.market import control
from tests.browser.test_browser import ARTIFACTS, CHROMIUM, LAUNCH_FLAGS

pytestmark = pytest.mark.stack


def test_the_live_view_shows_orders_completing(tmp_path):
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: `make test-tools` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    catalog = control.Catalog(products=3, stock=40, buyers=4, sellers=2, rounds=6, unreliable=(0,))
    market = control.up(unique_name("t-view"), catalog)
    try:
        assert market.view_url and market.view_url.startswith("http://127.0.0.1:")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(market.view_url)
            page.wait_for_selector("[data-tile='orders placed'] b")
            assert page.locator("[data-tile='completed'] b").inner_text() == "0"
            ids = control.place_orders(market, 12, fail_every=4)
            # Safety net only: the page refreshes every second; the workflows take a few.
            page.wait_for_function(
                "() => Number(document.querySelector(\"[data-tile='orders placed'] b\").textContent) === 12",
                timeout=300_000,
            )
            outcomes = control.wait_orders(market, ids)
            completed = sum(o["status"] == "completed" for o in outcomes.values())
            page.wait_for_function(
                f"() => document.querySelector(\"[data-tile='completed'] b\").textContent === '{completed}'",
                timeout=300_000,
            )
            # The view's own consumer group has read every event, and caught up.
            page.wait_for_function(
                f"() => document.querySelector(\"[data-tile='events seen'] b\").textContent === '{len(ids)}'",
                timeout=300_000,
            )
            page.wait_for_function(
                "() => document.querySelector(\"[data-tile='Kafka lag'] b\").textContent === '0'", timeout=300_000
            )
            assert page.locator("#orders td.completed").count() >= 1
            # Each order's row names the seller the contract net awarded it to.
            shown = {row.split("\t")[0]: row for row in page.locator("#orders tr").all_inner_texts()[1:]}
            assert shown and all(outcomes[i]["seller"] in row for i, row in shown.items()), shown
            assert page.locator("#orders td.compensated").count() == sum(
                o["status"] == "compensated" for o in outcomes.values()
            )
            # The charts: a bar per product with its stock, a bar per seller with its trust, the event rate's line.
            stock = control.stock_from_events(market)
            page.wait_for_function(
                f"() => document.querySelectorAll('svg.stock g').length === {catalog.products}", timeout=300_000
            )
            for product, units in stock.items():
                label = " ".join(product.split("-")[-2:])
                assert page.locator(f"svg.stock g[data-label='{label}']").text_content().endswith(str(units)), product
            failed = sum("never handed" in o.get("reason", "") for o in outcomes.values())
            assert failed, "seller 0 lists product 0 cheapest: it was awarded an order and failed it"
            cheat = page.locator("svg.trust g[data-label='seller 0']")
            page.wait_for_function(
                "() => (document.querySelector(\"svg.trust g[data-label='seller 0']\") || {}).textContent"
                f"?.includes('{failed} failed')",
                timeout=300_000,
            )
            expected = 1 / (1 + failed)  # no delivery: the course's trust
            assert f"{expected:.2f}" in cheat.text_content(), cheat.text_content()
            assert "1.00" in page.locator("svg.trust g[data-label='seller 1']").text_content()
            assert page.locator("svg.rate polyline").count() == 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "market-view.png"), full_page=True)
            browser.close()
    finally:
        control.down(market.name)
