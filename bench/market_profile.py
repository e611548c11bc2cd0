"""Where one order's time goes in the marketplace, from its trace.

    .venv/bin/python bench/market_profile.py [--orders 40]

On the running stack: a Zipkin server (lab_env.runtime.tracing.zipkin) and a
small market whose two sidecars trace every request (market.up(tracing=)).
``--orders`` orders are placed side by side (every fifth one's shipment is
refused, so its saga compensates), and each order's trace is read back: its
spans by kind (workflows, activities, actor calls, events, service
invocations), how long the order took, and how much of that time any of its
activities was running; the rest is the workflow engine between steps
(history saved, the next work item dispatched). Per activity and per actor
method, the mean duration and calls per order.

Reference, in the same run: the same orders on the same kind of market with
tracing off, so the table also gives what tracing costs (wall time ratio).
Actor state reads and writes are not in the orders' traces (the SDK's actor
runtime sends them without the incoming context), so they are not counted.

Writes bench/results/market_profile.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env import unique_name  # noqa: E402
from lab_env.marketplace.market import control  # noqa: E402
from lab_env.runtime.tracing import zipkin as tracing  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CATALOG = control.Catalog(products=10, stock=1000, buyers=20, sellers=5, rounds=5)


def run(orders: int, zipkin: tracing.Zipkin | None) -> tuple[float, control.Market, list[str], dict]:
    market = control.up(unique_name("traced" if zipkin else "plain"), CATALOG, view=False, tracing=zipkin)
    start = time.perf_counter()
    ids = control.place_orders(market, orders, fail_every=5)
    outcomes = control.wait_orders(market, ids)
    return time.perf_counter() - start, market, ids, outcomes


def activity_share(spans: list[dict]) -> tuple[float, float]:
    """(the order's duration, the time any of its activities was running), in ms."""
    t0 = min(s["timestamp"] for s in spans)
    total = max(s["timestamp"] + s.get("duration", 0) for s in spans) - t0
    busy, end = 0.0, 0.0
    for s in sorted((s for s in spans if tracing.kind_of(s) == "activity"), key=lambda s: s["timestamp"]):
        stop = s["timestamp"] + s.get("duration", 0)
        busy += max(0, stop - max(s["timestamp"], end))
        end = max(end, stop)
    return total / 1000, busy / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=40)
    args = parser.parse_args()

    plain_s, plain, _, _ = run(args.orders, None)
    control.down(plain.name)
    zipkin = tracing.start_zipkin(unique_name("profile-zipkin"))
    try:
        traced_s, market, ids, outcomes = run(args.orders, zipkin)
    except BaseException:
        zipkin.stop()
        raise
    try:
        kinds: Counter[str] = Counter()
        durations: dict[str, list[float]] = defaultdict(list)
        totals, busies = [], []
        for order in ids:
            shipped = outcomes[order]["status"] in ("completed", "compensated")  # only those reach the carrier
            also = (market.carrier.app_id,) if shipped else ()
            spans = tracing.trace_of(zipkin, market.app.app_id, order, also=also)
            kinds.update(tracing.kind_of(s) for s in spans)
            for s in spans:
                if tracing.kind_of(s) in ("activity", "actor call", "service invocation", "event published"):
                    durations[tracing.short_name(s)].append(s.get("duration", 0) / 1000)
            total, busy = activity_share(spans)
            totals.append(total)
            busies.append(busy)
    finally:
        control.down(market.name)
        zipkin.stop()

    n = len(ids)
    statuses = Counter(o["status"] for o in outcomes.values())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "commit": commit.stdout.strip(),
        "orders": n,
        "statuses": dict(statuses),
        "untraced_s": round(plain_s, 2),
        "traced_s": round(traced_s, 2),
        "spans_per_order": {k: round(v / n, 2) for k, v in kinds.most_common()},
        "order_ms_median": round(statistics.median(totals), 1),
        "activity_share_median": round(statistics.median(b / t for b, t in zip(busies, totals, strict=True)), 3),
        "per_name": {
            name: {"per_order": round(len(d) / n, 2), "mean_ms": round(statistics.mean(d), 1)}
            for name, d in sorted(durations.items(), key=lambda kv: -sum(kv[1]))
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "market_profile.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Where an order's time goes (from its trace)",
        "",
        f"`bench/market_profile.py --orders {n}` at {result['commit']}: {n} orders placed side by side",
        f"(8 at a time) on a market of {CATALOG.products} products, {CATALOG.buyers} buyers and",
        f"{CATALOG.sellers} sellers, {CATALOG.rounds} negotiation rounds; outcomes {dict(statuses)}.",
        "",
        "| run | wall time | orders/s | × reference |",
        "| --- | ---: | ---: | ---: |",
        f"| reference: tracing off | {plain_s:.1f} s | {n / plain_s:.1f} | 1.00 |",
        f"| every request traced to Zipkin | {traced_s:.1f} s | {n / traced_s:.1f} | {traced_s / plain_s:.2f} |",
        "",
        f"One order (median): {result['order_ms_median']:.0f} ms from its start to its last span; its activities",
        f"were running during {result['activity_share_median']:.0%} of it. The rest is the workflow engine between",
        "steps, and waiting behind the other orders in flight.",
        "",
        "| spans per order, by kind | count |",
        "| --- | ---: |",
        *(f"| {k} | {v:.1f} |" for k, v in result["spans_per_order"].items()),
        "",
        "| span (activity, or a call an activity made) | per order | mean ms |",
        "| --- | ---: | ---: |",
        *(f"| `{name}` | {v['per_order']:.1f} | {v['mean_ms']:.1f} |" for name, v in result["per_name"].items()),
        "",
        "Not counted: actor state reads and writes (their own traces: the SDK's actor runtime does not pass the",
        "context on), and the carrier app's own work.",
        "",
    ]
    (RESULTS / "market_profile.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
