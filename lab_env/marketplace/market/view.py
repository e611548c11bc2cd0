"""The marketplace's live view: one page, on 127.0.0.1, that shows the society
at work. ``control.up`` starts it next to the market and prints its link.

    GET /            the page (plain HTML and JavaScript, polling /api/state)
    GET /api/state   agents, open negotiations with their offers per round,
                     the latest orders with their saga stage or outcome,
                     outcome counts, order events per second (now and over
                     the last two minutes), stock per product, each seller's
                     record and trust, and the Kafka lag of the view's own
                     consumer group

Everything is read from the market itself: the actors and workflows through
its sidecar, the events from Kafka. An outcome, once settled, never changes,
so the view keeps those it has read.

    MARKET_NAME=<name> uvicorn lab_env.marketplace.market.view:app --host 127.0.0.1 --port ...
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from typing import TypedDict

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from lab_env.marketplace.market import allocation, control
from lab_env.runtime import kafka, workflows
from lab_env.runtime.actors import invoke

app = FastAPI(title="marketplace live view")
RECENT = 24
_settled: dict[str, dict] = {}


class _Events(TypedDict):
    count: int
    by_status: Counter[str]
    samples: deque[tuple[float, int]]  # (time, count), every poll: the rate now
    history: deque[tuple[float, int]]  # (time, count), once a second: the rate over time


SELLERS_SHOWN = 20  # a trust bar each; a bigger market shows its first ones
HISTORY_S = 120
_events: _Events = {
    "count": 0,
    "by_status": Counter(),
    "samples": deque(maxlen=30),
    "history": deque(maxlen=HISTORY_S + 1),
}
_lock = threading.Lock()


def _market() -> control.Market:
    return control.attach(os.environ["MARKET_NAME"])


def _order_number(instance: str) -> int:
    return int(instance.rsplit("-", 1)[1])


def _consume(topic: str, group: str) -> None:
    """Count the order events as a consumer group does, so its lag is real."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        kafka.config(
            {
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
            }
        )
    )
    consumer.subscribe([topic])
    try:
        _count_events(consumer)
    finally:
        consumer.close()  # leaves the group now: a killed consumer keeps it busy for the broker's session timeout


def _count_events(consumer) -> None:
    while not _stopping.is_set():
        for msg in consumer.consume(200, 0.5):
            if msg.error():
                continue
            record = kafka.Record.of(msg)
            status = (record.value or {}).get("data", {}).get("status", "?") if isinstance(record.value, dict) else "?"
            with _lock:
                _events["count"] += 1
                _events["by_status"][status] += 1
        with _lock:
            now = time.time()
            _events["samples"].append((now, _events["count"]))
            if not _events["history"] or now - _events["history"][-1][0] >= 1.0:
                _events["history"].append((now, _events["count"]))


def _per_second(history: list[tuple[float, int]]) -> list[float]:
    """Events per second between consecutive samples of ``history`` (oldest first)."""
    return [
        round((c1 - c0) / (t1 - t0), 2) for (t0, c0), (t1, c1) in zip(history, history[1:], strict=False) if t1 > t0
    ]


_rule: tuple[str, object] | None = None


def _trust(market: control.Market, standing: dict) -> float | None:
    """The trust the market's app gives ``standing``: its learner's rule when it was given one
    (the same file the app loads), else the course's; None when the learner's rule fails."""
    global _rule
    from lab_env.marketplace.agents.offer_policy import load_file

    path = (getattr(market.app, "env", None) or {}).get("MARKET_TRUST", "")
    try:
        if _rule is None or _rule[0] != path:
            _rule = (path, load_file(path).trust if path else allocation.trust)
        return allocation.weigh(_rule[1], standing)  # type: ignore[arg-type]
    except Exception:  # the learner's rule: the market counts no record then, and the page says so
        return None


def _lag(topic: str, group: str) -> int | None:
    try:
        ends = kafka.end_offsets(topic)
        committed = kafka.committed_offsets(group, topic)
    except Exception:  # the topic does not exist before the first order
        return None
    return sum(end - (committed.get(p) or 0) for p, end in ends.items())


_stopping = threading.Event()
_consumer_thread: list[threading.Thread] = []


@app.on_event("startup")
def _start_consumer() -> None:
    market = _market()
    thread = threading.Thread(target=_consume, args=(market.topic, f"{market.name}-view"), daemon=True, name="events")
    thread.start()
    _consumer_thread.append(thread)


@app.on_event("shutdown")
def _stop_consumer() -> None:
    """On SIGTERM (`market down`): the consumer closes, so forgetting the market need not wait for its group."""
    _stopping.set()
    for thread in _consumer_thread:
        thread.join(timeout=3)


@app.get("/healthz", status_code=204)
def healthz() -> None:
    """Readiness: the server answers (cheap; /api/state reads the whole market)."""


@app.get("/api/state")
def state() -> dict:
    market = _market()
    cat = market.catalog
    placed = sorted(control.orders_placed(market), key=_order_number)
    for instance in placed:
        if instance not in _settled:
            outcome = invoke(market.live(), market.actor("OrderActor"), instance, "Outcome")
            if outcome:
                _settled[instance] = outcome
    orders, negotiations = [], []
    for instance in placed[-RECENT:]:
        if instance in _settled:
            outcome = _settled[instance]
            orders.append(
                {
                    "id": instance,
                    "stage": outcome["status"],
                    "total": outcome.get("total"),
                    "seller": outcome.get("seller"),
                }
            )
            continue
        purchase = workflows.custom_status(market.live(), instance) or {}  # allocating, or the awarded seller
        saga = workflows.custom_status(market.live(), f"{instance}-saga")
        deal = workflows.custom_status(market.live(), f"{instance}-deal") or {}
        orders.append(
            {
                "id": instance,
                "stage": (saga or {}).get("stage") or purchase.get("stage") or "negotiating",
                "total": None,
                "seller": purchase.get("seller"),
            }
        )
        if not saga and deal.get("rounds"):
            negotiations.append({"id": instance, "rounds": deal["rounds"]})
    with _lock:
        samples = list(_events["samples"])
        rate = 0.0
        if len(samples) > 1 and samples[-1][0] > samples[0][0]:
            rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        events = {
            "count": _events["count"],
            "by_status": dict(_events["by_status"]),
            "per_second": round(rate, 1),
            "series": _per_second(list(_events["history"])),
        }
    stock = {
        market.product(n): invoke(market.live(), market.actor("ProductActor"), market.product(n), "Stock")
        for n in range(cat.products)
    }
    sellers = []
    for k in range(min(cat.sellers, SELLERS_SHOWN)):
        wallet = market.wallet("seller", k)
        standing = invoke(market.live(), market.actor("ReputationActor"), wallet, "Standing")
        sellers.append({"id": wallet, **standing, "trust": _trust(market, standing)})
    return {
        "market": market.name,
        "topic": market.topic,
        "agents": {
            "buyers": cat.buyers,
            "sellers": cat.sellers,
            "products": cat.products,
            "negotiators": 2 * len(placed),
            "in_stock": sum(stock.values()),
        },
        "outcomes": dict(Counter(o["status"] for o in _settled.values())),
        "placed": len(placed),
        "orders": orders,
        "negotiations": negotiations[-6:],
        "stock": stock,
        "sellers": sellers,
        "events": events,
        "kafka_lag": _lag(market.topic, f"{market.name}-view"),
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Marketplace</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1.2rem;color:#222} h1{font-size:1.3rem;margin:0 0 .6rem}
 .tiles{display:flex;gap:.8rem;flex-wrap:wrap}
 .tile{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:8rem}
 .tile b{display:block;font-size:1.4rem} .cols{display:flex;gap:1.5rem;flex-wrap:wrap;margin-top:1rem}
 table{border-collapse:collapse;font-size:.85rem}
 td,th{padding:.15rem .5rem;text-align:left;border-bottom:1px solid #eee}
 .completed{color:#1a7f37} .compensated{color:#b35900} .rejected,.no\\ deal{color:#888} svg{border:1px solid #eee}
</style></head><body>
<h1>Marketplace <span id="name"></span></h1>
<div class="tiles" id="tiles"></div>
<div class="cols">
 <div><h3>Orders (latest)</h3>
  <table id="orders"><tr><th>order</th><th>seller</th><th>stage</th><th>total</th></tr></table></div>
 <div><h3>Open negotiations</h3><div id="curves"></div></div>
</div>
<div class="cols">
 <div><h3>Order events per second</h3><div id="rate"></div></div>
 <div><h3>Stock per product</h3><div id="stock"></div></div>
 <div><h3>Sellers' trust</h3><div id="trust"></div></div>
</div>
<script>
const colors = {bid: "#1f77b4", ask: "#ff7f0e"};
function curve(n) {
  const w = 220, h = 90, r = n.rounds, xs = i => 10 + i * (w - 20) / Math.max(1, r.length - 1);
  const all = r.flatMap(x => [x.bid, x.ask]), lo = Math.min(...all), hi = Math.max(...all);
  const ys = v => h - 10 - (v - lo) * (h - 20) / Math.max(1, hi - lo);
  const line = k => r.map((x, i) => `${xs(i)},${ys(x[k])}`).join(" ");
  return `<div>${n.id}</div><svg width="${w}" height="${h}">` +
    ["bid", "ask"].map(k => `<polyline fill="none" stroke="${colors[k]}" stroke-width="2" points="${line(k)}"/>`)
      .join("") + "</svg>";
}
function bars(rows, max, cls) {  // rows: [label, value, text]; one horizontal bar each
  const w = 440, h = 18 * rows.length + 4, len = v => (max > 0 ? 150 * v / max : 0);
  return `<svg class="${cls}" width="${w}" height="${h}">` + rows.map(([label, v, text], i) =>
    `<g data-label="${label}"><rect x="90" y="${2 + 18 * i}" height="14" width="${len(v)}" fill="#4c78a8"/>` +
    `<text x="0" y="${13 + 18 * i}" font-size="11">${label}</text>` +
    `<text x="${94 + len(v)}" y="${13 + 18 * i}" font-size="10">${text}</text></g>`).join("") + "</svg>";
}
function spark(series) {
  const w = 300, h = 70, hi = Math.max(1, ...series);
  const pts = series.map((v, i) => `${5 + i * (w - 10) / Math.max(1, series.length - 1)},${h - 5 - v * (h - 10) / hi}`);
  return `<svg class="rate" width="${w}" height="${h}"><polyline fill="none" stroke="#1f77b4" stroke-width="2"` +
    ` points="${pts.join(" ")}"/><text x="5" y="12" font-size="10">peak ${hi}/s, last ${series.length} s</text></svg>`;
}
async function refresh() {
  const s = await (await fetch("api/state")).json();
  document.getElementById("name").textContent = s.market;
  const tiles = {"orders placed": s.placed, completed: s.outcomes.completed || 0,
    compensated: s.outcomes.compensated || 0, "no deal": s.outcomes["no deal"] || 0,
    "events/s": s.events.per_second, "events seen": s.events.count, "Kafka lag": s.kafka_lag ?? "-",
    "units in stock": s.agents.in_stock,
    "agents": s.agents.buyers + s.agents.sellers + s.agents.products + s.agents.negotiators};
  document.getElementById("tiles").innerHTML = Object.entries(tiles)
    .map(([k, v]) => `<div class="tile" data-tile="${k}"><b>${v}</b>${k}</div>`).join("");
  document.getElementById("orders").innerHTML = "<tr><th>order</th><th>seller</th><th>stage</th><th>total</th></tr>" +
    s.orders.map(o => `<tr><td>${o.id}</td><td>${o.seller ?? ""}</td>` +
      `<td class="${o.stage}">${o.stage}</td><td>${o.total ?? ""}</td></tr>`).join("");
  document.getElementById("curves").innerHTML = s.negotiations.map(curve).join("") || "<i>none right now</i>";
  document.getElementById("rate").innerHTML = spark(s.events.series);
  const stock = Object.entries(s.stock);
  document.getElementById("stock").innerHTML = bars(stock.map(([p, n]) => [p.split("-").slice(-2).join(" "), n, n]),
    Math.max(1, ...stock.map(([, n]) => n)), "stock");
  document.getElementById("trust").innerHTML = bars(s.sellers.map(x => [x.id.split("-").slice(-2).join(" "),
    x.trust ?? 0, `${x.trust === null ? "rule failed" : x.trust.toFixed(2)} ` +
    `(${x.delivered} delivered, ${x.failed} failed)`]), 1, "trust");
}
refresh(); setInterval(refresh, 1000);
</script></body></html>"""


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE
