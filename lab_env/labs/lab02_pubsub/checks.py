"""Checks for lab 02: event-driven agents with Dapr pub/sub.

Checks that grade a resource file or an app module start their own short-lived
app on topics of their own, so they judge the learner's work alone, not what
the notebook's apps have seen so far.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from lab_env.core.probes import wait_until
from lab_env.labs.checks import call_learner, check, fresh
from lab_env.notebooks.workspace import workspace
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp, dapr_app, unique_name, uvicorn_command
from lab_env.stack.components import load_resource

PUBSUB = "pubsub"
# How long a check waits for deliveries: a safety net against a wrong answer
# that never delivers, never what decides a right one (a passing check
# returns as soon as the events are in, usually well under a second).
DELIVERY_PATIENCE = 90.0


def _raise_if_not_done(app: DaprApp) -> None:
    """An exercise stub raised inside the app process: report it as not done."""
    if "NotImplementedError" in app.logs("app", 400):
        raise NotImplementedError


def _publish(app: DaprApp, topic: str, data: dict) -> None:
    resp = sidecar.post(app, sidecar.publish_path(PUBSUB, topic), json=data, timeout=10)
    assert resp.status_code < 300, f"publishing to {topic} failed ({resp.status_code}): {resp.text[:200]}"


def _get(app: DaprApp, path: str):  # -> parsed JSON
    resp = sidecar.client(keep_alive=False).get(f"{app.app_url}{path}", timeout=10)
    if resp.status_code >= 500:
        _raise_if_not_done(app)
    assert resp.status_code < 300, f"GET {path} answered {resp.status_code}: {resp.text[:200]}"
    return resp.json()


def _sidecar_subscriptions(app: DaprApp) -> list[dict]:
    meta = sidecar.get(app, sidecar.METADATA, timeout=5).json()
    return meta.get("subscriptions") or []


def _saved_subscription(path: Path, topic: str) -> dict:
    """The learner's Subscription resource, checked field by field."""
    if not path.exists():
        raise AssertionError(f"{path.name} is not saved yet: finish it and run its %%resource_file cell")
    doc = load_resource(path)
    assert doc["kind"] == "Subscription", f"{path.name} is a {doc['kind']}, expected kind: Subscription"
    assert doc.get("apiVersion") == "dapr.io/v2alpha1", (
        f"{path.name} has apiVersion {doc.get('apiVersion')!r}; routing rules need dapr.io/v2alpha1"
    )
    spec = doc.get("spec") or {}
    assert spec.get("pubsubname") == PUBSUB, (
        f"spec.pubsubname is {spec.get('pubsubname')!r}, expected {PUBSUB!r} (the component's name)"
    )
    assert spec.get("topic") == topic, f"spec.topic is {spec.get('topic')!r}, expected this run's topic {topic!r}"
    return doc


def _module(workdir: Path, name: str) -> None:
    if not (workdir / name).exists():
        raise AssertionError(f"{name} is not in the lab workspace: run its %%app_file cell")


@contextmanager
def _app_with(doc: dict, module: str, workdir: Path, kind: str, env: dict[str, str] | None = None) -> Iterator[DaprApp]:
    """Start ``module`` (in the workspace) with the Subscription ``doc``; stop it afterwards."""
    app_id = unique_name(fresh(f"chk-{kind}"))
    doc = {**doc, "metadata": {"name": app_id}}
    doc.pop("scopes", None)
    with tempfile.TemporaryDirectory(prefix="lab02-check-") as tmp:
        resource = Path(tmp) / "subscription.yaml"
        resource.write_text(yaml.safe_dump(doc, sort_keys=False))
        with dapr_app(
            app_id, uvicorn_command(f"{module}:app"), cwd=workdir, components=[PUBSUB], resources=[resource], env=env
        ) as app:
            yield app


# --- 1. programmatic subscription ------------------------------------------------------------


@check(
    "programmatic subscription",
    hint="return [{'pubsubname': 'pubsub', 'topic': LISTINGS, 'route': '/inbox'}]; "
    "Dapr asks only when the app starts, so stop_app(inbox) and run the start cell again",
)
def programmatic_subscription(inbox: DaprApp) -> str:
    topic = inbox.env["LISTINGS_TOPIC"]
    resp = sidecar.client(keep_alive=False).get(f"{inbox.app_url}/dapr/subscribe", timeout=5)
    if resp.status_code >= 500:
        _raise_if_not_done(inbox)
    assert resp.status_code == 200, f"GET /dapr/subscribe answered {resp.status_code}; see inbox.logs('app')"
    subs = resp.json()
    assert isinstance(subs, list), f"GET /dapr/subscribe must return a list of subscriptions, got {type(subs).__name__}"
    mine = [s for s in subs if isinstance(s, dict) and s.get("topic") == topic]
    assert mine, f"GET /dapr/subscribe has no subscription to the listings topic {topic!r}: {subs!r}"
    sub = mine[0]
    assert sub.get("pubsubname") == PUBSUB, f"pubsubname is {sub.get('pubsubname')!r}, expected {PUBSUB!r}"
    assert sub.get("route") == "/inbox", f"route is {sub.get('route')!r}, expected '/inbox' (where the app receives)"
    loaded = [s for s in _sidecar_subscriptions(inbox) if s.get("topic") == topic]
    assert loaded and loaded[0].get("type") == "PROGRAMMATIC", (
        "GET /dapr/subscribe is right, but the sidecar has not subscribed: it asked before your change"
    )
    return "the sidecar subscribed the inbox to the listings topic"


# --- 2. publishing and the CloudEvents envelope ---------------------------------------------------


@check(
    "CloudEvents envelope",
    hint="POST the listing as JSON to f'{storefront.sidecar_url}/v1.0/publish/pubsub/{LISTINGS}'",
)
def cloudevent(inbox: DaprApp, storefront: DaprApp, publish_listing: Callable[[dict], None]) -> str:
    topic = inbox.env["LISTINGS_TOPIC"]
    listings: list[dict[str, Any]] = [
        {"sku": f"chk-{fresh()}", "title": "check listing", "category": "books", "price": price}
        for price in (9.5, 11.0)
    ]
    for listing in listings:
        call_learner(publish_listing, dict(listing), timeout=120, what="publish_listing")

    def envelopes() -> list[dict]:
        return [e for e in _get(inbox, "/envelopes") if isinstance(e, dict)]

    def received() -> dict[str, dict]:
        return {e["data"]["sku"]: e for e in envelopes() if isinstance(e.get("data"), dict) and "sku" in e["data"]}

    def why_not() -> str:
        if [e for e in envelopes() if isinstance(e.get("data"), str) and listings[0]["sku"] in e["data"]]:
            return "the listing arrived as a string: publish it as JSON (json=listing), not as text"
        if not [s for s in _sidecar_subscriptions(inbox) if s.get("topic") == topic]:
            return "nothing can arrive: the inbox's sidecar has no subscription to the listings topic (exercise 1)"
        return (
            f"published 2 listings, but they did not reach the inbox within {DELIVERY_PATIENCE:.0f}s; "
            f"were they published to {topic!r}?"
        )

    wait_until(
        lambda: all(item["sku"] in received() for item in listings), DELIVERY_PATIENCE, "the check", failure=why_not
    )
    got = received()
    expected = {
        "specversion": "1.0",
        "type": "com.dapr.event.sent",
        "source": storefront.app_id,
        "topic": topic,
        "pubsubname": PUBSUB,
        "datacontenttype": "application/json",
    }
    for listing in listings:
        envelope = got[listing["sku"]]
        for field, value in expected.items():
            assert envelope.get(field) == value, (
                f"the envelope's {field} is {envelope.get(field)!r}, expected {value!r}"
                + (": publish through the storefront's sidecar" if field == "source" else "")
            )
        assert envelope["data"] == listing, (
            f"the envelope's data is {envelope['data']!r}, expected the listing {listing!r}"
        )
        assert isinstance(envelope.get("id"), str) and envelope["id"], "the envelope has no id"
    ids = {got[item["sku"]]["id"] for item in listings}
    assert len(ids) == 2, "two listings arrived with the same CloudEvent id"
    return f"2 listings arrived as CloudEvents {expected['specversion']}, each with its own id"


# --- 3. declarative subscription with routing rules ----------------------------------------------

# (category, price) -> the shelf (route /listings/<shelf>) it must reach.
_ROUTING_CASES = [
    ("books", 8.0, "books"),
    ("books", 45.0, "books"),
    ("games", 12.5, "bargains"),
    ("garden", 19.5, "bargains"),
    ("games", 60.0, "other"),
    ("toys", 20.0, "other"),
]


@check(
    "routing rules",
    hint='rules are tried in order: first event.data.category == "books" -> /listings/books, '
    "then event.data.price < 20.0 -> /listings/bargains; routes.default: /listings/other",
)
def routing(path: Path, topic: str) -> str:
    doc = _saved_subscription(path, topic)
    routes = doc["spec"].get("routes")
    assert isinstance(routes, dict) and isinstance(routes.get("rules"), list) and routes["rules"], (
        f"{path.name} needs spec.routes.rules: a list of match/path pairs"
    )
    assert routes.get("default"), f"{path.name} needs spec.routes.default for the listings no rule matches"
    _module(path.parent, "buyer.py")
    check_topic = unique_name(f"chk-listings-{fresh()}")
    with _app_with({**doc, "spec": {**doc["spec"], "topic": check_topic}}, "buyer", path.parent, "routes") as buyer:
        sent = {}
        for category, price, shelf in _ROUTING_CASES:
            sku = f"chk-{fresh()}"
            sent[sku] = (category, price, shelf)
            _publish(buyer, check_topic, {"sku": sku, "title": "check", "category": category, "price": price})

        def placed() -> dict[str, str]:
            return {item.get("sku"): shelf for shelf, items in _get(buyer, "/shelves").items() for item in items}

        def unplaced() -> str:
            missing = [f"{c} at {p}" for sku, (c, p, _) in sent.items() if sku not in placed()]
            return (
                f"no shelf received: {', '.join(missing)}; see the sidecar log for the rule "
                "(a rule must compile, and the default route must exist)"
            )

        wait_until(lambda: len(placed()) >= len(sent), DELIVERY_PATIENCE, "the check", failure=unplaced)
        got = placed()
    for sku, (category, price, shelf) in sent.items():
        assert got[sku] == shelf, (
            f"a {category} listing at {price} went to /listings/{got[sku]}, expected /listings/{shelf}"
        )
    return f"{len(sent)} listings, each on the right shelf"


# --- 4. at-least-once delivery, booked once ------------------------------------------------------


@check(
    "idempotent orders",
    hint="remember each CloudEvent id in `processed`; a redelivery books nothing and still answers SUCCESS",
)
def idempotent(module: Path) -> str:
    _module(module.parent, module.name)
    orders_topic, dead_topic = unique_name(f"chk-orders-{fresh()}"), unique_name(f"chk-dead-{fresh()}")
    doc = {
        "apiVersion": "dapr.io/v2alpha1",
        "kind": "Subscription",
        "metadata": {"name": "orders"},
        "spec": {
            "pubsubname": PUBSUB,
            "topic": orders_topic,
            "routes": {"default": "/orders"},
            "deadLetterTopic": dead_topic,
        },
    }
    sku, quantities = f"chk-{fresh()}", [2, 3, 4]
    env = {"DEAD_ORDERS_TOPIC": dead_topic, "LOSE_FIRST_ACK": "1"}
    with _app_with(doc, module.stem, module.parent, "orders", env) as desk:
        for n, quantity in enumerate(quantities):
            _publish(desk, orders_topic, {"order_id": f"{sku}-{n}", "sku": sku, "quantity": quantity})

        def settled() -> bool:
            _raise_if_not_done(desk)
            report = _get(desk, "/report")
            ours = [d for d in report["deliveries"] if str(d["order_id"]).startswith(sku)]
            return len(ours) >= 2 * len(quantities) or len(report["dead_letters"]) > 0

        wait_until(
            settled,
            DELIVERY_PATIENCE,
            "the check",
            failure=f"the 3 orders were not delivered twice each within {DELIVERY_PATIENCE:.0f}s; see the app log",
        )
        report = _get(desk, "/report")
    dead = [d["order_id"] for d in report["dead_letters"]]
    assert not dead, f"valid orders went to the dead-letter topic ({dead}): book() must answer SUCCESS for them"
    units, total = report["booked"].get(sku, 0), sum(quantities)
    assert units != 2 * total, (
        f"3 orders of {total} units in all, each delivered twice, booked {units} units: a redelivery was booked again"
    )
    assert units == total, f"3 orders of {total} units in all were booked as {units} units"
    return f"6 deliveries of 3 orders, {total} units booked once"


# --- 5. dead letters ---------------------------------------------------------------------------


@check(
    "dead-letter topic",
    hint="spec: pubsubname pubsub, topic ${ORDERS}, routes.default /orders, deadLetterTopic ${DEAD_ORDERS}",
)
def dead_letters(path: Path, orders_topic: str, dead_topic: str) -> str:
    doc = _saved_subscription(path, orders_topic)
    spec = doc["spec"]
    assert spec.get("deadLetterTopic") == dead_topic, (
        f"spec.deadLetterTopic is {spec.get('deadLetterTopic')!r}, expected the DEAD_ORDERS topic {dead_topic!r}"
    )
    route = (spec.get("routes") or {}).get("default")
    assert route == "/orders", f"spec.routes.default is {route!r}: every order must reach the app at /orders"
    _module(path.parent, "orders.py")
    my_orders, my_dead = unique_name(f"chk-orders-{fresh()}"), unique_name(f"chk-dead-{fresh()}")
    retargeted = {**doc, "spec": {**spec, "topic": my_orders, "deadLetterTopic": my_dead}}
    env = {"DEAD_ORDERS_TOPIC": my_dead, "LOSE_FIRST_ACK": "0"}
    tag = fresh()
    poison = {"order_id": f"poison-{tag}", "sku": "chk", "quantity": "lots"}
    refused = {"order_id": f"refused-{tag}", "sku": "chk", "quantity": 1000}
    with _app_with(retargeted, "orders", path.parent, "dlq", env) as desk:
        for order in (poison, refused):
            _publish(desk, my_orders, order)
        wait_until(
            lambda: len(_get(desk, "/report")["dead_letters"]) >= 2,
            DELIVERY_PATIENCE,
            "the check",
            failure="the malformed and the refused order did not reach the dead-letter topic "
            f"within {DELIVERY_PATIENCE:.0f}s",
        )
        report = _get(desk, "/report")
    count = {
        o["order_id"]: sum(d["order_id"] == o["order_id"] for d in report["deliveries"]) for o in (poison, refused)
    }
    dead = {d["order_id"]: d for d in report["dead_letters"]}
    assert set(dead) == {poison["order_id"], refused["order_id"]}, f"unexpected dead letters: {sorted(dead)}"
    assert dead[poison["order_id"]]["topic"] == my_orders, "a dead letter keeps its original topic in the envelope"
    assert count[poison["order_id"]] >= 2, "the malformed order was not retried before it was dead-lettered"
    assert count[refused["order_id"]] == 1, "the refused (DROP) order should be dead-lettered at its first delivery"
    # The number of retries depends on timing; the pass line states only what was proven.
    return "the malformed order was retried, then dead-lettered; the refused one at its first delivery"


# --- 6. the agent API ----------------------------------------------------------------------------


def _call(registry: DaprApp, method: str, path: str, body: object = None) -> httpx.Response:
    resp = sidecar.client(keep_alive=False).request(method, f"{registry.app_url}{path}", json=body, timeout=10)
    if resp.status_code >= 500:
        _raise_if_not_done(registry)
        raise AssertionError(f"{method} {path} answered {resp.status_code} (a crash); see registry.logs('app')")
    return resp


@check(
    "agent API",
    hint="find_agents filters agents.values() by capability; send_message answers 404 for an "
    "unknown agent, else publishes the message and returns a Receipt with the correlation id",
)
def agent_api(registry: DaprApp) -> str:
    tag = fresh()
    seller = {"id": f"chk-seller-{tag}", "name": "Check Seller", "capabilities": [f"sell:kites-{tag}", "chat"]}
    buyer = {"id": f"chk-buyer-{tag}", "name": "Check Buyer", "capabilities": [f"buy:kites-{tag}", "chat"]}
    for card in (seller, buyer):
        resp = _call(registry, "POST", "/agents", card)
        assert resp.status_code == 201, f"POST /agents answered {resp.status_code}, expected 201: {resp.text[:200]}"
    for capability, who in ((f"sell:kites-{tag}", {seller["id"]}), (f"buy:kites-{tag}", {buyer["id"]})):
        resp = _call(registry, "GET", f"/agents?capability={capability}")
        found = {a.get("id") for a in resp.json()} if resp.status_code == 200 else resp.status_code
        assert found == who, f"GET /agents?capability={capability} found {found!r}, expected {who!r}"
    found = {a.get("id") for a in _call(registry, "GET", "/agents?capability=chat").json()}
    assert {seller["id"], buyer["id"]} <= found, "GET /agents?capability=chat must find both agents having it"

    path = f"/agents/{seller['id']}/messages"
    message = {"sender": buyer["id"], "type": "ask_price", "payload": {"sku": "kite-1"}}
    resp = _call(registry, "POST", path, {**message, "correlation_id": f"corr-{tag}"})
    assert resp.status_code == 202, f"POST {path} answered {resp.status_code}, expected 202: {resp.text[:200]}"
    receipt = resp.json()
    assert receipt.get("correlation_id") == f"corr-{tag}", f"the correlation id sent must come back, got {receipt!r}"
    assert receipt.get("recipient") == seller["id"], f"the receipt must name the recipient, got {receipt!r}"
    resp = _call(registry, "POST", path, message)
    generated = resp.json().get("correlation_id") if resp.status_code == 202 else None
    assert isinstance(generated, str) and generated and generated != f"corr-{tag}", (
        f"without a correlation id the API must make one up; it answered {resp.status_code}: {resp.text[:200]}"
    )
    resp = _call(registry, "POST", f"/agents/nobody-{tag}/messages", message)
    assert resp.status_code == 404, f"a message to an unknown agent must get 404, got {resp.status_code}"

    def delivered() -> set:
        return {m.get("correlation_id") for m in _call(registry, "GET", path).json()}

    wait_until(
        lambda: {f"corr-{tag}", generated} <= delivered(),
        DELIVERY_PATIENCE,
        "the check",
        failure="the messages were accepted but never reached the mailbox: "
        "publish them to MESSAGES through the sidecar",
    )
    return "registered, discovered by capability, 2 messages delivered with their correlation ids"


_BAD_REQUESTS = [
    ("POST", "/agents", {"id": "Kite Shop!", "name": "Kites", "capabilities": ["chat"]}, 422, "id"),
    ("POST", "/agents", {"id": "kites", "name": "", "capabilities": ["chat"]}, 422, "name"),
    ("POST", "/agents", {"id": "kites", "name": "Kites", "capabilities": "chat"}, 422, "capabilities"),
    ("POST", "/agents", {"id": "kites", "name": "Kites", "capabilities": []}, 422, "capabilities"),
    ("POST", "/agents", {"name": "Kites", "capabilities": ["chat"]}, 422, "id"),
    ("GET", "/agents?capability=Sell%20Kites", None, 422, "capability"),
    (
        "POST",
        "/agents/{known}/messages",
        {"sender": "{known}", "type": "ask_price", "payload": "cheap?"},
        422,
        "payload",
    ),
    ("POST", "/agents/{known}/messages", {"type": "ask_price"}, 422, "sender"),
    ("POST", "/agents/{unknown}/messages", {"sender": "{known}", "type": "ask_price"}, 404, None),
    ("GET", "/agents/{unknown}", None, 404, None),
]


@check("agent API errors", hint="bad input must get a 422 naming the field, an unknown agent a 404; never a 500")
def agent_api_errors(registry: DaprApp) -> str:
    tag = fresh()
    names = {"known": f"chk-known-{tag}", "unknown": f"chk-unknown-{tag}"}
    _call(registry, "POST", "/agents", {"id": names["known"], "name": "Known", "capabilities": ["chat"]})
    for method, path, body, status, field in _BAD_REQUESTS:
        path = path.format(**names)
        if isinstance(body, dict):
            body = {k: v.format(**names) if isinstance(v, str) else v for k, v in body.items()}
        resp = _call(registry, method, path, body)
        assert resp.status_code == status, (
            f"{method} {path} with {body!r} answered {resp.status_code}, expected {status}"
        )
        if field:
            locs = [err.get("loc", []) for err in resp.json().get("detail", [])]
            assert any(loc and loc[-1] == field for loc in locs), (
                f"the 422 for {method} {path} must name the field {field!r} in detail[*].loc, got {locs!r}"
            )
    return f"{len(_BAD_REQUESTS)} bad requests refused with 422 or 404, none crashed"


# --- 7. the marketplace --------------------------------------------------------------------------


@check(
    "marketplace",
    hint="discover sellers per wanted category (GET /agents?capability=sell:<category>), "
    'then one rule per category that has a seller: event.data.category == "<category>" -> /listings/<category>',
)
def marketplace(registry: DaprApp, subscribe_buyer: Callable[[str, list[str], str], dict]) -> str:
    tag = fresh()
    sold, unsold, unwanted = [f"kites-{tag}", f"yoyos-{tag}"], f"maps-{tag}", f"books-{tag}"
    resp = _call(
        registry,
        "POST",
        "/agents",
        {"id": f"chk-toyshop-{tag}", "name": "Toy Shop", "capabilities": [f"sell:{c}" for c in (*sold, unwanted)]},
    )
    assert resp.status_code == 201, f"registering a seller answered {resp.status_code}"
    app_id, topic = unique_name(fresh("chk-shopper")), unique_name(f"chk-market-{tag}")
    doc = call_learner(subscribe_buyer, app_id, [sold[0], unsold, sold[1]], topic, timeout=120, what="subscribe_buyer")
    assert isinstance(doc, dict) and doc.get("kind") == "Subscription", (
        f"subscribe_buyer must return a Subscription resource as a dict, got {type(doc).__name__}"
    )
    spec = doc.get("spec") or {}
    assert spec.get("topic") == topic, (
        f"the subscription's topic is {spec.get('topic')!r}, expected the topic passed in"
    )
    assert spec.get("pubsubname") == PUBSUB, f"spec.pubsubname is {spec.get('pubsubname')!r}, expected {PUBSUB!r}"
    rules = (spec.get("routes") or {}).get("rules") or []
    matches = " ".join(str(r.get("match", "")) for r in rules)
    assert unsold not in matches, "the subscription has a rule for a category no registered seller sells"
    assert not (spec.get("routes") or {}).get("default") and not spec.get("route"), (
        "a buyer receives only what it wants: no default route"
    )
    module_dir = workspace()
    _module(module_dir, "buyer.py")
    with tempfile.TemporaryDirectory(prefix="lab02-check-") as tmp:
        resource = Path(tmp) / "shopper.yaml"
        resource.write_text(yaml.safe_dump(doc, sort_keys=False))
        load_resource(resource)
        with dapr_app(
            app_id, uvicorn_command("buyer:app"), cwd=module_dir, components=[PUBSUB], resources=[resource]
        ) as shopper:
            # The unwanted listings go first: by the time the wanted ones are in, they were handled.
            for category in (unwanted, unsold, *sold):
                _publish(shopper, topic, {"sku": f"{category}-1", "title": "check", "category": category, "price": 5.0})

            def received() -> set:
                return {i.get("category") for items in _get(shopper, "/shelves").values() for i in items}

            wait_until(
                lambda: set(sold) <= received(),
                DELIVERY_PATIENCE,
                "the check",
                failure=lambda: (
                    f"the buyer received {len(received() & set(sold))} of the 2 wanted categories that "
                    f"have a seller within {DELIVERY_PATIENCE:.0f}s; see the sidecar log for the rules"
                ),
            )
            got = received()
    assert unwanted not in got, "the buyer received a category it did not ask for"
    assert unsold not in got, "the buyer received a category nobody sells"
    return "the buyer receives exactly the wanted categories that have a seller"
