"""The marketplace's supply chain as three agents, each its own process:

    retailer     publishes demand events (a fixed, seeded list)      -> demand
    distributor  fills demand from stock, backorders the rest, and
                 reorders from the supplier when stock runs low      -> fulfilment, reorders, stock (changelog)
                 adds arriving shipments to stock                    <- shipments
    supplier     ships every reorder after a lead time               -> shipments

    python -m lab_env.marketplace.agents.supply_chain retailer --chain '<json>' --demands 300 --rate 150
    python -m lab_env.marketplace.agents.supply_chain distributor --chain '<json>' --rules restock:plan
    python -m lab_env.marketplace.agents.supply_chain supplier --chain '<json>' --lead-time 0.2

The distributor and the supplier are exactly-once processors
(lab_env.runtime.kafka.streams): kill either at any instant and restart it, and every
demand is still fulfilled or backordered once, every reorder shipped once.
The distributor's restocking rule is a function ``plan(stock, on_order,
qty) -> (shipped, backordered, reorder)`` named by --rules (module:function,
imported from the working directory): lab 03's learners write it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

from lab_env.runtime import kafka
from lab_env.runtime.kafka import streams
from lab_env.runtime.kafka.streams import Emit

SKUS = ("kite", "yo-yo", "chess", "puzzle")
INITIAL_STOCK = 30
ROLES = ("retailer", "distributor", "supplier")


def chain_topics(run: str) -> dict[str, str]:
    """Topic names of one supply chain (``run`` makes them unique)."""
    return {t: f"{t}-{run}" for t in ("demand", "fulfilment", "reorders", "shipments", "stock")}


def create_chain(chain: dict[str, str], partitions: int = 4) -> None:
    kafka.create_topics({name: partitions for name in chain.values()})


def demands(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """The retailer's demand events: the same list for the same seed."""
    rng = random.Random(seed)
    return [{"id": f"d-{i:05d}", "sku": rng.choice(SKUS), "qty": rng.randint(1, 5)} for i in range(count)]


def run_retailer(chain: dict[str, str], count: int, rate: float, seed: int) -> None:
    from confluent_kafka import Producer

    # Idempotent: a retried send is written once, in order (per key).
    producer = Producer(kafka.config({"enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5}))
    print("ready", flush=True)
    start = time.monotonic()
    for i, event in enumerate(demands(count, seed)):
        producer.produce(chain["demand"], key=event["sku"], value=json.dumps(event))
        producer.poll(0)
        pause = start + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    producer.flush(30)
    print(f"done {count}", flush=True)


def distributor_handler(chain: dict[str, str], plan: Callable[[int, int, int], tuple[int, int, int]]):
    def handle(state: dict[str, Any], record: kafka.Record) -> list[Emit]:
        event = record.value
        sku = event["sku"]
        book = state.get(sku) or {"stock": INITIAL_STOCK, "on_order": 0}
        if record.topic == chain["shipments"]:
            state[sku] = {"stock": book["stock"] + event["qty"], "on_order": book["on_order"] - event["qty"]}
            return []
        shipped, backordered, reorder = (int(n) for n in plan(book["stock"], book["on_order"], event["qty"]))
        state[sku] = {"stock": book["stock"] - shipped, "on_order": book["on_order"] + reorder}
        out = [
            Emit(
                chain["fulfilment"],
                sku,
                {
                    "demand": event["id"],
                    "sku": sku,
                    "qty": event["qty"],
                    "shipped": shipped,
                    "backordered": backordered,
                },
            )
        ]
        if reorder:
            out.append(Emit(chain["reorders"], sku, {"id": f"r-{event['id']}", "sku": sku, "qty": reorder}))
        return out

    return handle


def supplier_handler(chain: dict[str, str], lead_time: float):
    def handle(state: dict[str, Any], record: kafka.Record) -> list[Emit]:
        time.sleep(lead_time)  # making the goods
        order = record.value
        return [Emit(chain["shipments"], order["sku"], {"id": order["id"], "sku": order["sku"], "qty": order["qty"]})]

    return handle


def load_rule(spec: str) -> Callable[..., Any]:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--chain", required=True, help="JSON of chain_topics()")
    parser.add_argument("--demands", type=int, default=300)
    parser.add_argument("--rate", type=float, default=150.0, help="demand events per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rules", default="restock:plan")
    parser.add_argument("--lead-time", type=float, default=0.2)
    args = parser.parse_args()
    chain = json.loads(args.chain)
    name = os.environ.get("WORKER_NAME", f"{args.role}-{os.getpid()}")
    if args.role == "retailer":
        run_retailer(chain, args.demands, args.rate, args.seed)
        return
    if args.role == "distributor":
        proc = streams.Processor(
            name,
            f"distributors-{chain['demand']}",
            [chain["demand"], chain["shipments"]],
            distributor_handler(chain, load_rule(args.rules)),
            changelog=chain["stock"],
            batch=20,
        )
    else:
        proc = streams.Processor(
            name, f"suppliers-{chain['demand']}", [chain["reorders"]], supplier_handler(chain, args.lead_time), batch=5
        )
    streams.run(proc)


if __name__ == "__main__":
    main()


def audit(chain: dict[str, str]) -> dict[str, Any]:
    """The books of a supply chain, read back from its topics (committed records only).

    ``problems`` lists every way they do not balance; an empty list means
    each demand was fulfilled or backordered exactly once, each reorder
    shipped exactly once, and the stock agrees with what came and went.
    """
    demand = [r.value for r in kafka.read_topic(chain["demand"])]
    filled = [r.value for r in kafka.read_topic(chain["fulfilment"])]
    reorders = [r.value for r in kafka.read_topic(chain["reorders"])]
    shipments = [r.value for r in kafka.read_topic(chain["shipments"])]
    stock = streams.restore(chain["stock"])
    problems: list[str] = []

    def once(ids: list[str], expected: list[str], what: str) -> None:
        seen: dict[str, int] = {}
        for i in ids:
            seen[i] = seen.get(i, 0) + 1
        lost = [i for i in expected if i not in seen]
        twice = sorted(i for i, n in seen.items() if n > 1)
        if lost:
            problems.append(f"{len(lost)} {what} missing (e.g. {lost[0]})")
        if twice:
            problems.append(f"{len(twice)} {what} counted twice (e.g. {twice[0]})")

    once([f["demand"] for f in filled], [d["id"] for d in demand], "demands fulfilled or backordered")
    once([s["id"] for s in shipments], [r["id"] for r in reorders], "reorders shipped")
    for f in filled:
        if f["shipped"] < 0 or f["backordered"] < 0 or f["shipped"] + f["backordered"] != f["qty"]:
            problems.append(
                f"demand {f['demand']}: shipped {f['shipped']} + backordered {f['backordered']} != {f['qty']} demanded"
            )
            break
    for sku in SKUS:
        came = sum(s["qty"] for s in shipments if s["sku"] == sku)
        went = sum(f["shipped"] for f in filled if f["sku"] == sku)
        book = stock.get(sku, {"stock": INITIAL_STOCK, "on_order": 0})
        if book["stock"] != INITIAL_STOCK + came - went:
            problems.append(f"{sku}: stock {book['stock']} != {INITIAL_STOCK} + {came} shipped in - {went} shipped out")
        if book["stock"] < 0:
            problems.append(f"{sku}: stock is negative ({book['stock']})")
    return {
        "demanded": sum(d["qty"] for d in demand),
        "shipped": sum(f["shipped"] for f in filled),
        "backordered": sum(f["backordered"] for f in filled),
        "demands": len(demand),
        "filled": len(filled),
        "reorders": len(reorders),
        "shipments": len(shipments),
        "stock": stock,
        "problems": problems,
    }
