"""The marketplace with 10,000 agents active: orders per second as the society grows.

    .venv/bin/python bench/market_scale.py [--agents 10000] [--step 500]

On the running stack (`lab-env up`): one market host, stocked with 200
products and the wallets of 2,000 buyers and 500 sellers (all activated,
2,700 actors), then orders in steps of ``--step``. Every order brings three
agents of its own (its buyer's and its seller's negotiator, and its order
actor) and runs the purchase -> negotiate -> order_saga workflows. After each
step the bench reads the active actors by type from the sidecar's metadata
API and the memory of the host (app + sidecar), until ``--agents`` actors are
active. The reference is the first step, in the same run: the ratio shows
what the size of the society costs per order.

Prints the table, writes bench/results/market_scale.{json,md} and a plot
(market_scale.png). Exits non-zero if an order is lost or the books do not
balance at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import psutil

from lab_env import unique_name
from lab_env.core.versions import pins
from lab_env.marketplace.market import control
from lab_env.runtime import sidecar
from lab_env.runtime.actors import invoke

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CATALOG = control.Catalog(products=200, stock=100_000, buyers=2000, sellers=500, rounds=3)


def active_actors(market: control.Market) -> dict[str, int]:
    meta = sidecar.get(market.app, sidecar.METADATA, timeout=30).json()
    counts = (meta.get("actorRuntime") or {}).get("activeActors") or meta.get("actors") or []
    # The sidecar omits the count of a type with none active; dapr.internal.* are workflow engine actors.
    return {
        c["type"].rsplit("-", 1)[0]: int(c.get("count", 0))
        for c in counts
        if not c["type"].startswith("dapr.internal.")
    }


def host_mb(market: control.Market) -> float:
    total = 0
    for pid in (market.app.app_pid, market.app.sidecar_pid):
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return round(total / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=500)
    args = parser.parse_args()
    market = control.up(unique_name("scale"), CATALOG, view=False)
    rows, ids = [], []
    try:
        for n in range(CATALOG.sellers):  # sellers' wallets too: every agent of the catalog is active
            invoke(market.app, market.actor("WalletActor"), market.wallet("seller", n), "Balance")
        while True:
            began = time.monotonic()
            step = control.place_orders(market, args.step, fail_every=10)
            outcomes = control.wait_orders(
                market, step, timeout=1800, progress=f"orders {len(ids)}-{len(ids) + len(step)}"
            )
            seconds = time.monotonic() - began
            ids += step
            actors = active_actors(market)
            rows.append(
                {
                    "orders": len(ids),
                    "active_agents": sum(actors.values()),
                    "by_type": actors,
                    "step_orders_per_s": round(len(step) / seconds, 2),
                    "host_mb": host_mb(market),
                    "step_completed": sum(1 for o in outcomes.values() if o and o["status"] == "completed"),
                }
            )
            print(rows[-1], flush=True)
            if rows[-1]["active_agents"] >= args.agents:
                break
        sheet = control.audit(market)
    finally:
        control.down(market.name)
    text = table(rows, sheet, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "market_scale.md").write_text(text)
    (RESULTS / "market_scale.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "sheet": {k: v for k, v in sheet.items() if k not in ("lost", "double")},
                "lost": len(sheet["lost"]),
                "double": len(sheet["double"]),
            },
            indent=2,
        )
    )
    plot(rows)
    return 0 if sheet["balanced"] and not sheet["lost"] else 1


def table(rows: list[dict], sheet: dict, args) -> str:
    v = pins()
    ref = rows[0]["step_orders_per_s"]
    head = (
        f"# Marketplace at scale\n\n`python bench/market_scale.py --agents {args.agents} --step {args.step}` on daprd "
        f"{v.dapr_runtime}, Python {platform.python_version()}, {psutil.cpu_count()} cores, one market host "
        f"(app + sidecar). Catalog: {CATALOG.products} products, {CATALOG.buyers} buyers' and {CATALOG.sellers} "
        f"sellers' wallets; each order adds its 2 negotiators and its order actor.\n\n"
    )
    lines = [
        "| orders | active agents | orders/s in the step | vs first step | host memory (MB) |",
        "|-------:|--------------:|---------------------:|--------------:|-----------------:|",
    ]
    lines += [
        f"| {r['orders']:,} | {r['active_agents']:,} | {r['step_orders_per_s']} | "
        f"{r['step_orders_per_s'] / ref:.2f} | {r['host_mb']} |"
        for r in rows
    ]
    last = rows[-1]["by_type"]
    foot = (
        f"\n\nActive at the end, by type: {', '.join(f'{k} {n:,}' for k, n in sorted(last.items()))}.\n"
        f"Books at the end: {sheet['statuses']}; lost {len(sheet['lost'])}, charged twice {len(sheet['double'])}, "
        f"stock balances {sheet['stock_balances']}, money balances {sheet['money_balances']}.\n"
    )
    return head + "\n".join(lines) + foot


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([r["active_agents"] for r in rows], [r["step_orders_per_s"] for r in rows], marker="o")
    ax.set_xlabel("active agents (actors)")
    ax.set_ylabel("orders/s")
    ax.set_ylim(bottom=0)
    ax.set_title("one market host: throughput as the society grows")
    fig.tight_layout()
    fig.savefig(RESULTS / "market_scale.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
