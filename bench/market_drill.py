"""The marketplace under fire: 1,000 orders while a random agent host is SIGKILLed
every few seconds, and Kafka and Redis are each restarted once.

    .venv/bin/python bench/market_drill.py [--orders 1000] [--reference 200] [--seed 7]

On the running stack (`lab-env up`; the stack is restarted service by
service, never left down), in two parts:

1. reference: a fresh market, ``--reference`` orders, nothing killed;
2. drill: a fresh market, ``--orders`` orders (every 10th shipment refused,
   so its saga compensates). While they run, a chaos thread SIGKILLs one
   host at random, the market's or the carrier's (app and sidecar
   together), at random intervals of 4 to 9 seconds (seeded) and starts it
   again; a third of the way in it restarts
   Redis, two thirds of the way in the Kafka broker.

Then it audits the books from the actors' own state (lab_env.marketplace.market.control.
balance_sheet) and reads the order events back from Kafka. Expected: every
order ends completed, compensated or without a deal, exactly once; 0 lost;
0 charged twice; stock and money balance; every outcome announced on Kafka
(repeats allowed: the stream is at least once). The ratio of orders/s shows
what the chaos costs.

Exits non-zero if anything is lost, doubled or unbalanced. Prints the table
and writes bench/results/market_drill.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from lab_env import unique_name
from lab_env.core.probes import http_status, wait_until
from lab_env.core.versions import pins
from lab_env.marketplace.market import control
from lab_env.runtime import workflows
from lab_env.runtime.actors import invoke
from lab_env.runtime.kafka import read_topic
from lab_env.stack.lifecycle import restart_service

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BATCH = 25
CATALOG = control.Catalog(products=10, stock=1000, buyers=50, sellers=10, rounds=4)


class Chaos(threading.Thread):
    """Kills the host at random intervals; restarts Redis, then Kafka, once a third and two thirds are placed."""

    def __init__(self, market: control.Market, total: int, placed: list, seed: int) -> None:
        super().__init__(daemon=True)
        self.market, self.total, self.placed, self.random = market, total, placed, random.Random(seed)
        self.stop = threading.Event()
        self.kills = 0
        self.kills_by_host = Counter()
        self.restarts: list[tuple[str, float, float]] = []  # (what, at second, seconds it took)
        self.errors: list[str] = []
        self.started = time.monotonic()

    def run(self) -> None:
        pending = [(1 / 3, "redis"), (2 / 3, "kafka")]
        while not self.stop.wait(self.random.uniform(4, 9)):
            try:
                host = self.random.choice([self.market.app, self.market.carrier])  # a random agent host
                host.crash()
                self.kills += 1
                self.kills_by_host[host is self.market.app and "market" or "carrier"] += 1
                if host is self.market.app:
                    workflows.restart(host)
                else:
                    host.restart(90)
                if pending and len(self.placed) >= pending[0][0] * self.total:
                    service = pending.pop(0)[1]
                    began = time.monotonic()
                    restart_service(service, timeout=600)  # Kafka reloads every partition of this machine
                    self.restarts.append((service, round(began - self.started, 1), round(time.monotonic() - began, 2)))
            except Exception as err:  # reported in the table; the audit decides pass or fail
                self.errors.append(f"{type(err).__name__}: {str(err)[:200]}")
                print(f"chaos: {self.errors[-1]}", file=sys.stderr)


def _host_ready(market: control.Market) -> None:
    """Until the host (restarted by the chaos thread) serves workflows again."""
    wait_until(
        lambda: market.app.alive() and http_status(f"{market.app.app_url}/workflows/ready") == 204,
        300,
        "the market host after a kill",
    )


def place_through_crashes(market: control.Market, count: int, placed: list) -> None:
    """Place orders 0..count-1 in batches; a batch the host died under is placed again, skipping the
    orders whose workflow already exists (an order is scheduled at most once)."""
    for first in range(0, count, BATCH):
        numbers = list(range(first, min(first + BATCH, count)))
        while numbers:
            try:
                missing = [n for n in numbers if workflows.status(market.app, f"{market.name}-order-{n}") == "missing"]
                if missing == numbers:
                    control.place_orders(market, len(numbers), start=numbers[0], fail_every=10)
                else:  # a batch cut short by a kill: the orders not yet scheduled, one by one
                    for n in missing:
                        control.place_orders(market, 1, start=n, fail_every=10)
                placed.extend(numbers)
                numbers = []
            except Exception:
                _host_ready(market)


def wait_through_crashes(market: control.Market, ids: list[str]) -> dict[str, dict | None]:
    outcomes: dict[str, dict | None] = {}
    with tqdm(total=len(ids), desc="orders", unit="order") as bar:
        while len(outcomes) < len(ids):
            try:
                for instance in ids:
                    if instance in outcomes:
                        continue
                    workflows.wait(market.app, instance, 1800, raise_failed=False)
                    outcomes[instance] = invoke(market.app, market.actor("OrderActor"), instance, "Outcome")
                    bar.update()
            except Exception:
                _host_ready(market)
    return outcomes


def run_orders(count: int, chaos_seed: int | None) -> dict:
    market = control.up(unique_name(f"drill{'c' if chaos_seed is not None else 'r'}"), CATALOG, view=False)
    try:
        began = time.monotonic()
        placed: list[int] = []
        chaos = Chaos(market, count, placed, chaos_seed) if chaos_seed is not None else None
        if chaos:
            chaos.start()
        place_through_crashes(market, count, placed)
        ids = [f"{market.name}-order-{n}" for n in range(count)]
        outcomes = wait_through_crashes(market, ids)
        seconds = time.monotonic() - began
        if chaos:
            chaos.stop.set()
            chaos.join(timeout=300)
            _host_ready(market)
        sheet = control.balance_sheet(market, outcomes)
        announced = Counter(r.value["data"]["order"] for r in read_topic(market.topic))
        return {
            "orders": count,
            "seconds": round(seconds, 1),
            "orders_per_s": round(count / seconds, 2),
            "statuses": sheet["statuses"],
            "lost": len(sheet["lost"]),
            "double": len(sheet["double"]),
            "unpaid": len(sheet["unpaid"]),
            "unrefunded": len(sheet["unrefunded"]),
            "misshipped": len(sheet["misshipped"]),
            "stock_balances": sheet["stock_balances"],
            "money_balances": sheet["money_balances"],
            "settle_repeats": sheet["settle_repeats"],
            "never_announced": len(set(ids) - set(announced)),
            "announced_twice": sum(1 for i in ids if announced[i] > 1),
            "kills": chaos.kills if chaos else 0,
            "kills_by_host": dict(chaos.kills_by_host) if chaos else {},
            "service_restarts": chaos.restarts if chaos else [],
            "chaos_errors": chaos.errors if chaos else [],
            "lost_ids": sheet["lost"][:10],
        }
    finally:
        control.down(market.name)


def table(ref: dict, drill: dict, args) -> str:
    rows = [
        ("orders", ref["orders"], drill["orders"]),
        (
            "host SIGKILLs (app + sidecar)",
            0,
            f"{drill['kills']} ({', '.join(f'{h} {n}' for h, n in sorted(drill['kills_by_host'].items()))})",
        ),
        (
            "service restarts (at s, took s)",
            "-",
            ", ".join(f"{w} at {a} s ({t} s)" for w, a, t in drill["service_restarts"]) or "none",
        ),
        ("outcomes", _statuses(ref), _statuses(drill)),
        ("lost (no outcome)", ref["lost"], drill["lost"]),
        ("charged twice", ref["double"], drill["double"]),
        ("completed but not paid", ref["unpaid"], drill["unpaid"]),
        ("compensated but not refunded", ref["unrefunded"], drill["unrefunded"]),
        ("shipped wrongly (carrier's records)", ref["misshipped"], drill["misshipped"]),
        ("stock balances", ref["stock_balances"], drill["stock_balances"]),
        ("money balances", ref["money_balances"], drill["money_balances"]),
        ("settle re-run (the first outcome kept)", ref["settle_repeats"], drill["settle_repeats"]),
        ("never announced on Kafka", ref["never_announced"], drill["never_announced"]),
        ("announced more than once", ref["announced_twice"], drill["announced_twice"]),
        ("seconds", ref["seconds"], drill["seconds"]),
        ("orders/s", ref["orders_per_s"], drill["orders_per_s"]),
        ("orders/s, drill / reference", "1.00", f"{drill['orders_per_s'] / ref['orders_per_s']:.2f}"),
    ]
    v = pins()
    head = (
        f"# Marketplace drill\n\n`python bench/market_drill.py --orders {args.orders} --reference {args.reference} "
        f"--seed {args.seed}` on daprd {v.dapr_runtime}, Kafka {v.kafka}, Python {platform.python_version()}, "
        f"{_cores()} cores.\nTwo hosts on the market's own mTLS control plane: the market (app + sidecar) with "
        "products, buyers, sellers, wallets and orders as actors and the purchase / negotiate / order_saga workflows, "
        "and the carrier it calls by service invocation under an access policy. Every 10th shipment is refused "
        "(compensation). Each SIGKILL picks one of the two hosts at random.\n\n"
    )
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'measure':<{width}} | reference | drill |", f"|{'-' * (width + 2)}|-----------|-------|"]
    lines += [f"| {name:<{width}} | {a} | {b} |" for name, a, b in rows]
    if drill["chaos_errors"]:
        lines.append(f"\nChaos thread errors: {drill['chaos_errors']}")
    return head + "\n".join(lines) + "\n"


def _statuses(result: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(result["statuses"].items()))


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ref = run_orders(args.reference, None)
    drill = run_orders(args.orders, args.seed)
    text = table(ref, drill, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "market_drill.md").write_text(text)
    (RESULTS / "market_drill.json").write_text(
        json.dumps({"reference": ref, "drill": drill, "seed": args.seed}, indent=2)
    )
    ok = (
        all(drill[k] == 0 for k in ("lost", "double", "unpaid", "unrefunded", "misshipped", "never_announced"))
        and drill["stock_balances"]
        and drill["money_balances"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
