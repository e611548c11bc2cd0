"""Levers on the marketplace's order path (issue 32), each measured on its own.

    .venv/bin/python bench/market_levers.py [--orders 300] [--repeats 2]

On the running stack (`lab-env up`; used, never stopped). Each configuration
starts a fresh market (lab_env.marketplace.market.control.up; forgotten after
the run, so each starts from the same store), warms it with
20 orders, then places --orders orders (8 at a time, every tenth one's
shipment refused so its saga compensates) and waits for all of them.
Configurations, each adding one lever to the row before:

  ref     the market app as it was: each event publish blocks the workflow
          worker's event loop (a sync call to the sidecar), each shipment
          opens an HTTP client of its own, Python's default GC
          (LAB_ASYNC_SIDECAR_CALLS=0)
  async   publishes and the carrier call awaited on the loop's one
          keep-alive client (lab_env.runtime.sidecar.async_client)
  gc      lab_env.runtime.actors.tune_gc_for_actors() in the workflow host
          (LAB_TUNE_GC=1; off by default)
  2hosts  the society on two hosts: placement spreads agents and workflows

Per run: orders/s from the first placement to the last outcome; CPU per
order of the market app(s), of their sidecar(s) and of the whole machine;
the outcomes, so a lever that loses or fails orders shows. The
configurations run interleaved --repeats times; the table gives medians and
ratios against ref from the same run.

Writes bench/results/market_levers.{json,md} (or --out NAME's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env import unique_name  # noqa: E402
from lab_env.core import registry  # noqa: E402
from lab_env.core.versions import pins  # noqa: E402
from lab_env.marketplace.market import access, control  # noqa: E402
from lab_env.runtime import secure_plane  # noqa: E402
from lab_env.stack import lifecycle  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CATALOG = control.Catalog(products=200, stock=100_000, buyers=2000, sellers=500, rounds=3)
CONFIGS: dict[str, tuple[dict[str, str], int]] = {  # name -> (the app's environment, hosts)
    "ref": ({"LAB_ASYNC_SIDECAR_CALLS": "0"}, 1),
    "async": ({}, 1),
    "gc": ({"LAB_TUNE_GC": "1"}, 1),
    "2hosts": ({"LAB_TUNE_GC": "1"}, 2),
    "etcd-mem": ({}, 1),
}
PLANE_ENV = {"etcd-mem": {"LAB_PLANE_ETCD_IN_MEMORY": "1"}}  # read where the market's plane starts: here

LEVERS = {
    "ref": "the market app as it was: each event publish blocks the workflow worker's event loop, each shipment "
    "opens an HTTP client of its own, Python's default GC",
    "async": "publishes and the carrier call awaited on the loop's one keep-alive client",
    "gc": "tune_gc_for_actors() in the workflow host (frozen start-up objects, fewer collections)",
    "2hosts": "the society on two hosts (app + sidecar each); placement spreads agents and workflows",
    "etcd-mem": "`async`, with the market plane's scheduler keeping its etcd in /dev/shm (no disk writes or "
    "fsyncs; not `gc` or `2hosts`)",
}


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def processes(market: control.Market) -> dict[str, list[int]]:
    """Whose CPU is counted, by role: the market's hosts, its carrier, the stack's services, this script
    (placing orders and reading outcomes)."""
    carrier = market.running_carrier()
    found = {
        "app": [h.app_pid for h in market.hosts],
        "sidecar": [h.sidecar_pid for h in market.hosts],
        "carrier (app + sidecar)": [carrier.app_pid, carrier.sidecar_pid],
    }
    plane = secure_plane.load_plane(access.plane_name(market.name))
    for record in (registry.load(access.plane_name(market.name)), registry.load(plane.sentry_name if plane else "")):
        for pid in record.pids if record else []:
            try:  # placement, scheduler or sentry: the binary's name
                role = Path(psutil.Process(pid).cmdline()[0]).name
            except (psutil.Error, IndexError):
                role = "plane process"
            found.setdefault(f"market's {role}", []).append(pid)
    found.update({f"stack's {s.name}": [s.pid] for s in lifecycle.status() if s.pid})
    found["bench (places, waits)"] = [os.getpid()]
    return found


def busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - times.iowait


def run(config: str, orders: int) -> dict:
    env, hosts = CONFIGS[config]
    saved = {k: os.environ.get(k) for k in PLANE_ENV.get(config, {})}
    os.environ.update(PLANE_ENV.get(config, {}))
    try:
        market = control.up(unique_name(f"lever-{config}"), CATALOG, view=False, env=env, hosts=hosts)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    try:
        control.wait_orders(market, control.place_orders(market, 20))  # first calls, activations, JIT-free warm-up
        groups = processes(market)
        cpu0, busy0 = {g: cpu_seconds(pids) for g, pids in groups.items()}, busy_seconds()
        began = time.perf_counter()
        outcomes = control.wait_orders(market, control.place_orders(market, orders, fail_every=10), timeout=1800)
        wall = time.perf_counter() - began
        cpu1, busy1 = {g: cpu_seconds(pids) for g, pids in groups.items()}, busy_seconds()
    finally:
        control.down(market.name)
        control.forget(market.name)  # every run starts from the same store
    statuses = Counter((o or {}).get("status", "unsettled") for o in outcomes.values())
    row = {
        "config": config,
        "orders_per_s": round(orders / wall, 2),
        "app_ms_per_order": round(1000 * (cpu1["app"] - cpu0["app"]) / orders, 1),
        "sidecar_ms_per_order": round(1000 * (cpu1["sidecar"] - cpu0["sidecar"]) / orders, 1),
        "machine_ms_per_order": round(1000 * (busy1 - busy0) / orders, 1),
        "machine_busy": round((busy1 - busy0) / (wall * psutil.cpu_count()), 2),
        "outcomes": dict(statuses),
        "ms_per_order_by_process": {g: round(1000 * (cpu1[g] - cpu0[g]) / orders, 1) for g in groups},
    }
    row["ms_per_order_by_process"]["rest of the machine"] = round(
        row["machine_ms_per_order"] - sum(row["ms_per_order_by_process"].values()), 1
    )
    print(row, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default="ref,async,gc,2hosts", help=f"of {', '.join(CONFIGS)}")
    parser.add_argument("--table-only", action="store_true", help="print the table of the last run's JSON again")
    parser.add_argument("--out", default="market_levers", help="results file name under bench/results (no suffix)")
    args = parser.parse_args()
    configs = args.configs.split(",")
    if args.table_only:  # the last run's table again, from its JSON
        runs = json.loads((RESULTS / f"{args.out}.json").read_text())["runs"]
    else:
        runs = [run(config, args.orders) for _ in range(args.repeats) for config in configs]
    rows = []
    for config in configs:
        mine = [r for r in runs if r["config"] == config]
        row = {"config": config, "runs": len(mine), "outcomes": mine[-1]["outcomes"]}
        by = mine[0]["ms_per_order_by_process"]
        row["ms_per_order_by_process"] = {
            g: round(statistics.median(r["ms_per_order_by_process"][g] for r in mine), 1) for g in by
        }
        for key in ("orders_per_s", "app_ms_per_order", "sidecar_ms_per_order", "machine_ms_per_order", "machine_busy"):
            row[key] = round(statistics.median(r[key] for r in mine), 2)
        row["orders_per_s_range"] = (min(r["orders_per_s"] for r in mine), max(r["orders_per_s"] for r in mine))
        rows.append(row)
    text = table(rows, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(text)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"rows": rows, "runs": runs}, indent=2))
    unsettled = [r for r in runs if r["outcomes"].get("unsettled")]
    return 1 if unsettled else 0


def table(rows: list[dict], args) -> str:
    v = pins()
    ref = rows[0]
    head = (
        f"# Levers on the marketplace's order path\n\n`python bench/market_levers.py --orders {args.orders} "
        f"--repeats {args.repeats}{'' if args.configs == 'ref,async,gc,2hosts' else ' --configs ' + args.configs}"
        f"{'' if args.out == 'market_levers' else ' --out ' + args.out}` on daprd {v.dapr_runtime}, "
        f"Python {platform.python_version()}, "
        f"{psutil.cpu_count()} cores. A fresh market per run ({CATALOG.products} products, {CATALOG.buyers} buyers, "
        f"{CATALOG.sellers} sellers, {CATALOG.rounds} rounds), {args.orders} orders after 20 to warm it; each row "
        f"adds one lever to the row before (`etcd-mem` to `async`); medians of {args.repeats} interleaved runs, "
        f"ratios against `{ref['config']}`.\n\n"
    )
    lines = [
        "| config | orders/s | runs' range | × ref | app CPU ms/order | sidecar CPU ms/order | machine CPU ms/order | "
        "machine busy | outcomes (last run) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r['config']} | {r['orders_per_s']} | {r['orders_per_s_range'][0]}–{r['orders_per_s_range'][1]} | "
        f"{r['orders_per_s'] / ref['orders_per_s']:.2f} | "
        f"{r['app_ms_per_order']} | {r['sidecar_ms_per_order']} | {r['machine_ms_per_order']} | "
        f"{r['machine_busy']:.0%} | {r['outcomes']} |"
        for r in rows
    ]
    groups = list(rows[0]["ms_per_order_by_process"])
    lines += [
        "",
        "Machine CPU per order, by process (ms, median):",
        "",
        "| process | " + " | ".join(r["config"] for r in rows) + " |",
        "| --- |" + " ---: |" * len(rows),
    ]
    lines += [f"| {g} | " + " | ".join(str(r["ms_per_order_by_process"][g]) for r in rows) + " |" for g in groups]
    levers = "\n".join(f"- `{name}`: {what}" for name, what in LEVERS.items())
    return head + "\n".join(lines) + "\n\n" + levers + "\n"


if __name__ == "__main__":
    sys.exit(main())
