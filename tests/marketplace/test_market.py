"""The capstone's marketplace on the live stack: orders negotiated, paid,
shipped or compensated, each outcome settled and announced on Kafka once,
the books balancing, also through a crash of the whole market host; and the
model path, with a scripted OpenAI-compatible server, deciding offers inside
workflow activities."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import httpx
import pytest

from lab_env import unique_name
from lab_env.core.paths import state_dir
from lab_env.core.profile import current
from lab_env.core.resp import RedisConnection
from lab_env.errors import LabEnvError
from lab_env.marketplace.market import access, control
from lab_env.runtime import kafka, workflows
from lab_env.runtime.actors import invoke
from lab_env.runtime.kafka import read_topic
from lab_env.runtime.scale import placement_spread
from lab_env.runtime.tracing import zipkin as tracing
from tests.marketplace.test_offer_policy import ScriptedModel

pytestmark = pytest.mark.stack
_numbers = itertools.count()
SMALL = control.Catalog(products=3, stock=50, buyers=4, sellers=2, rounds=4)


@pytest.fixture
def market():
    started = []

    def up(catalog=SMALL, **kwargs):
        # unique_name is per process: the count keeps this module's markets apart.
        m = control.up(unique_name(f"t-market{next(_numbers)}"), catalog, **kwargs)
        started.append(m)
        return m

    yield up
    for m in started:
        control.down(m.name)
    for m in started:  # every suite run would leave its markets' keys in Redis
        control.forget(m.name)


@pytest.fixture(scope="module")
def zipkin():
    server = tracing.start_zipkin(unique_name("t-zipkin"))
    yield server
    server.stop()


def _announced(market) -> Counter:
    return Counter(r.value["data"]["order"] for r in read_topic(market.topic))


def test_orders_end_completed_compensated_or_without_a_deal_and_the_books_balance(market):
    m = market()
    ids = control.place_orders(m, 21, fail_every=5)
    outcomes = control.wait_orders(m, ids)
    sheet = control.balance_sheet(m, outcomes)
    assert sheet["statuses"] == {"completed": 14, "compensated": 4, "no deal": 3}, sheet
    assert sheet["balanced"], sheet
    deals = {int(i.rsplit("-", 1)[1]): o["price"] for i, o in outcomes.items() if o["status"] == "completed"}
    cards = {(c["id"], m.product(n)): c["price"] for n in range(m.catalog.products) for c in control.seller_cards(m, n)}
    for i, o in outcomes.items():  # the awarded seller was briefed from its own card: it never sells below it
        n, card = int(i.rsplit("-", 1)[1]), cards[o["seller"], o["product"]]
        terms = invoke(m.app, m.actor("SellerAgent"), f"{i}-seller", "Terms")
        assert (terms["limit"], terms["opening"]) == (card, max(card, control.seller_opening(m.catalog, n))), (i, terms)
        buyer, seller = control._limits(m.catalog, n, card)
        if n in deals:  # between the seller's card and the buyer's limit, each order's own
            assert card <= deals[n] <= buyer["limit"], (n, deals[n], buyer, seller)
    assert len(set(deals.values())) >= len(deals) // 2, f"agents with their own terms strike their own deals: {deals}"
    assert _announced(m) == Counter(ids), "without a crash, each order's outcome goes out on Kafka once"
    stock = {
        m.product(n): invoke(m.app, m.actor("ProductActor"), m.product(n), "Stock") for n in range(m.catalog.products)
    }
    assert control.stock_from_events(m) == stock, "the inventory topic alone rebuilds the stock"
    # Allocation: the sellers listing the product, found in the market's directory, and the best card wins.
    best = {
        m.product(n): min(control.seller_cards(m, n), key=lambda c: (c["price"], c["days"], c["id"]))["id"]
        for n in range(m.catalog.products)
    }
    assert {i: o["seller"] for i, o in outcomes.items()} == {i: best[o["product"]] for i, o in outcomes.items()}
    for i, o in outcomes.items():
        entries = invoke(m.app, m.actor("WalletActor"), o["seller"], "Entries")
        assert (f"credit:{i}" in entries) == (o["status"] == "completed"), (i, o["status"], entries)


def test_a_seller_that_fails_an_order_loses_the_next_awards_to_the_others_and_the_books_balance(market):
    # Seller 0 lists product 0 cheapest (0.90 of list; sellers 2 and 1 ask 1.00 and 1.05), and never
    # delivers. Its first award fails and goes on its record; then its cheap card no longer wins.
    m = market(control.Catalog(products=3, stock=50, buyers=4, sellers=3, rounds=4, unreliable=(0,)))
    cheats, second = m.wallet("seller", 0), m.wallet("seller", 2)
    assert min(control.seller_cards(m, 0), key=lambda c: c["price"])["id"] == cheats
    first = control.wait_orders(m, control.place_orders(m, 1))  # order 0: product 0
    assert [(o["seller"], o["status"]) for o in first.values()] == [(cheats, "compensated")], first
    assert "never handed the goods" in next(iter(first.values()))["reason"]
    assert invoke(m.app, m.actor("ReputationActor"), cheats, "Standing") == {"delivered": 0, "failed": 1}
    later = control.wait_orders(m, control.place_orders(m, 6))  # orders 1 to 6; 3 and 6 are product 0's
    awarded = {i: o["seller"] for i, o in later.items() if o["product"] == m.product(0)}
    assert awarded and set(awarded.values()) == {second}, f"product 0 went to {awarded} after seller 0 failed"
    assert all(o["status"] != "compensated" for o in later.values()), later
    delivered = Counter(o["seller"] for o in later.values() if o["status"] == "completed")
    for seller, count in delivered.items():  # each delivery on the seller's record
        assert invoke(m.app, m.actor("ReputationActor"), seller, "Standing")["delivered"] == count
    sheet = control.balance_sheet(m, {**first, **later})
    assert sheet["balanced"], sheet


def test_one_order_is_one_trace_through_its_workflows_activities_actors_events_and_the_carrier(market, zipkin):
    m = market(tracing=zipkin)
    ids = control.place_orders(m, 5, fail_every=5)  # the fifth order's shipment is refused: it compensates
    order = ids[4]
    assert control.wait_orders(m, ids)[order]["status"] == "compensated"
    spans = tracing.trace_of(zipkin, m.app.app_id, order, also=(m.carrier.app_id,))
    by_id = {s["id"]: s for s in spans}
    activities = [
        tracing.short_name(s).removeprefix("activity||")
        for _, s in tracing.tree(spans)
        if tracing.kind_of(s) == "activity" and "decide_offer" not in s["name"]
    ]
    assert activities == ["allocate", "reserve", "debit", "ship", "refund", "release", "settle"], activities
    # The app's own calls joined the trace, each under the activity that made it (the context passed on).
    made = [s for s in spans if tracing.kind_of(s) in ("actor call", "event published", "service invocation")]
    from_market = [s for s in made if s["localEndpoint"]["serviceName"] == m.app.app_id]
    assert {tracing.kind_of(s) for s in from_market} == {"actor call", "event published", "service invocation"}
    for s in from_market:
        parent = by_id.get(s.get("parentId"), {})
        assert parent.get("name", "").startswith("activity||"), (s["name"], parent.get("name"))
    # The carrier's sidecar took the invocation in the same trace.
    assert any(s["localEndpoint"]["serviceName"] == m.carrier.app_id for s in made)


def test_a_crash_of_the_market_host_loses_and_doubles_nothing(market):
    m = market()
    ids = control.place_orders(m, 30, fail_every=4)
    workflows.wait(m.app, ids[5], raise_failed=False)  # then crash with the rest in flight
    m.app.crash()  # app and sidecar SIGKILLed with orders in every stage
    workflows.restart(m.app)
    outcomes = control.wait_orders(m, ids)
    sheet = control.balance_sheet(m, outcomes)
    assert sheet["balanced"] and not sheet["lost"] and not sheet["double"], sheet
    assert sum(sheet["statuses"].values()) == 30
    announced = _announced(m)
    assert set(announced) == set(ids), "every outcome went out on Kafka"
    assert max(announced.values()) <= 2, announced  # a repeat only where a crash cut between settling and marking
    stock = {
        m.product(n): invoke(m.app, m.actor("ProductActor"), m.product(n), "Stock") for n in range(m.catalog.products)
    }
    assert control.stock_from_events(m) == stock, "the inventory topic, repeats counted once, rebuilds the stock"


# The model's answers by (role, round): the seller's second is below its floor (90, its card's price).
SCRIPT = {
    ("buyer", 1): 98,
    ("seller", 1): 120,
    ("buyer", 2): 104,
    ("seller", 2): 50,
    ("buyer", 3): 110,
    ("seller", 3): 105,
    ("buyer", 4): 110,
    ("seller", 4): 100,
}


def _scripted(body: dict) -> str:
    role = "buyer" if "behalf of a buyer" in body["messages"][0]["content"] else "seller"
    return json.dumps({"offer": SCRIPT[(role, json.loads(body["messages"][1]["content"])["round"])]})


def test_a_model_decides_the_offers_and_a_bad_answer_is_never_applied(market):
    with ScriptedModel(respond=_scripted) as model:
        m = market(
            control.Catalog(products=1, stock=5, buyers=1, sellers=1, rounds=4),
            secrets={"OPENAI_API_KEY": "sk-scripted-key"},
            env={"OPENAI_BASE_URL": model.base_url},
        )
        ids = control.place_orders(m, 1)
        outcome = control.wait_orders(m, ids)[ids[0]]
        deal = workflows.output(workflows.wait(m.app, f"{ids[0]}-deal"))
    assert model.requests and all(r["auth"] == "Bearer sk-scripted-key" for r in model.requests)
    assert [r["by"] for r in deal["rounds"]] == [["model", "model"], ["model", "rule"], ["model", "model"]], deal
    assert deal["rounds"][1]["ask"] == 116.67  # the rule's ask for round 2, not the model's 50
    assert deal["price"] == 107.5 and outcome["status"] == "completed", (deal, outcome)
    # Every log the market wrote, whole, and every event it published: the rejection is there, the key is not.
    logs = {
        p: p.read_text(errors="replace")
        for p in [
            m.app.app_log,
            m.app.sidecar_log,
            *m.app.app_log.parent.glob("*.log"),
            *(state_dir() / "markets" / m.name).glob("*.log"),
        ]
    }
    assert any("below the seller's limit" in text for text in logs.values())
    assert [p.name for p, text in logs.items() if "sk-scripted-key" in text] == []
    assert "sk-scripted-key" not in json.dumps([r.value for r in read_topic(m.topic)])


def test_the_market_sidecar_refuses_a_call_without_its_api_token(market):
    m = market(view=False)
    stock = f"{m.app.sidecar_url}/v1.0/actors/{m.actor('ProductActor')}/{m.product(0)}/method/Stock"
    assert m.app.api_token and len(m.app.api_token) >= 32
    assert httpx.put(stock, timeout=30).status_code == 401
    assert httpx.put(stock, timeout=30, headers={"dapr-api-token": "a-guess"}).status_code == 401
    assert httpx.get(f"{m.app.sidecar_url}/v1.0/metadata", timeout=30).status_code == 401
    assert httpx.put(stock, timeout=30, headers=m.app.api_headers()).json() == SMALL.stock  # lab_env's clients send it
    assert control.place_orders(m, 1) and control.orders_placed(m)  # workflows over gRPC carry it too


def test_app_to_app_calls_follow_the_access_policy_and_a_forbidden_call_is_refused(market):
    """The carrier lets only the market ship, and nothing else: checked by real sidecars with
    certificates from the market's own sentry (a caller is known by its certificate's SPIFFE id)."""
    m = market(view=False)
    (order,) = control.place_orders(m, 1)
    assert control.wait_orders(m, [order])[order]["status"] == "completed"  # market -> carrier POST /ship
    assert control.shipments(m, [order])[order]["tracking"] == f"trk-{order}"
    rows = access.drill(m)
    assert [(r["caller"], r["call"], r["status"]) for r in rows] == [
        ("market", "POST /ship on the carrier", 422),  # let through: the carrier itself refused the parcel
        ("market", f"GET /shipments/{m.name}-drill on the carrier", 403),  # a method it was not granted
        ("stranger", "POST /ship on the carrier", 403),  # a caller the policy does not name
        ("stranger", "GET /healthz on the market", 403),  # nobody may call the market's app
    ], rows
    assert control.shipments(m, [f"{m.name}-drill"]) == {f"{m.name}-drill": None}, "the drill shipped nothing"


def test_on_two_hosts_the_agents_spread_and_a_killed_host_loses_and_doubles_nothing(market):
    m = market(control.Catalog(products=4, stock=50, buyers=4, sellers=3, rounds=3), hosts=2)
    first, second = m.hosts
    ids = control.place_orders(m, 16, fail_every=4)
    workflows.wait(m.live(), ids[0], raise_failed=False)
    # 16 of each: all on one host by chance is 2 in 65,536 (4 products would be 1 in 8).
    spread = {kind: placement_spread(m.hosts, m.actor(kind)) for kind in ("OrderActor", "BuyerAgent")}
    assert all(count > 0 for counts in spread.values() for count in counts.values()), (
        f"placement put every agent of a kind on one host: {spread}"
    )
    first.crash()  # with orders in flight; nobody restarts it: the second host takes its agents over
    outcomes = control.wait_orders(m, ids)
    sheet = control.audit(m)
    assert not sheet["lost"] and not sheet["double"] and sheet["balanced"], sheet
    assert sheet["statuses"]["compensated"] == 4 and sum(sheet["statuses"].values()) == 16, sheet
    assert all(o and o["status"] in control.TERMINAL for o in outcomes.values()), outcomes
    assert control.attach(m.name).live().app_id == second.app_id, "attach finds the market by its live host"
    assert control.hosts_running(m.name) == (1, 2), "status counts the killed host out, the market in"


def test_a_forgotten_market_leaves_no_key_topic_or_group_and_a_running_one_is_not_forgotten(market):
    m = market(control.Catalog(products=2, stock=10, buyers=2, sellers=2, rounds=2))
    kept = control.up(unique_name(f"{m.name}x"), control.Catalog(products=2, stock=10, buyers=2, sellers=2, rounds=2))
    try:
        control.wait_orders(m, control.place_orders(m, 3, fail_every=3))
        control.wait_orders(kept, control.place_orders(kept, 1))
        with pytest.raises(LabEnvError, match="is running"):
            control.forget(m.name)
        record = control.record_path(m.name).read_text()
        control.down(m.name)
        control.record_path(m.name).write_text(record)  # as a kernel that died before `down` leaves it
        with pytest.raises(LabEnvError, match="still has its record"):
            control.forget(m.name)
        control.down(m.name)  # what that error says to do: it clears the record of a market whose apps are gone
        assert not control.record_path(m.name).exists()
        prof = current()
        with RedisConnection(prof.redis_host, prof.redis_port) as redis:
            before = list(redis.scan(f"*{m.name}*"))
        assert any(k.startswith(f"{m.name}||") for k in before) and any(
            k.startswith(f"carrier-{m.name}||") for k in before
        ), "the market and its carrier kept state in Redis"
        gone = control.forget(m.name)
        assert m.topic in gone["topics"] and m.inventory_topic in gone["topics"], gone["topics"]
        groups = {m.name, f"carrier-{m.name}", f"{m.name}-view"}
        # Its live view reads the orders topic as a group (the app and the carrier publish only).
        assert f"{m.name}-view" in gone["groups"] and not groups & set(kafka.consumer_groups()), gone["groups"]
        with RedisConnection(prof.redis_host, prof.redis_port) as redis:
            assert not [k for k in redis.scan(f"*{m.name}*") if kept.name not in k]
            assert any(k.startswith(f"{kept.name}||") for k in redis.scan(f"*{kept.name}*")), "another market's went"
        assert not {m.topic, m.inventory_topic} & set(kafka.topic_partitions_all())
        assert kept.topic in kafka.topic_partitions_all(), "a market whose name starts the same lost its topic"
        assert control.wait_orders(kept, control.place_orders(kept, 1)), "the other market goes on"
    finally:
        control.down(kept.name)
        control.forget(kept.name)
