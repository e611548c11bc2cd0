"""100,000 actors on one machine: activation and call rates, latency, memory, CPU.

    .venv/bin/python bench/actors_bench.py [--actors 100000] [--calls 30000] [--in-flight 64]
        [--configs ref,uvloop,2hosts,3hosts]

Each configuration starts fresh hosts of the reference ProductActor
(lab_env.marketplace.agents.product_host: FastAPI + the Dapr SDK, each host an app with its own daprd) on the running
stack (`lab-env up`; used, never stopped), then:

1. activates --actors fresh actors, one `Stock` each (the actor reads its
   state from Redis through the sidecar once, when activated, and keeps it
   in memory), with lab_env.runtime.scale's raw asyncio client
   spreading the calls over the hosts' sidecars with --in-flight calls in
   flight; rate and latency per slice, RSS and CPU seconds of every process at
   10k, 50k and 100k actors;
2. calls --calls random already-active actors the same way.

Configurations (the levers, each adding one to the row before):
  ref      1 host, uvicorn on asyncio + h11, the Dapr SDK as shipped (a new
           aiohttp session and TCP connection for every actor state call)
  uvloop   uvicorn on uvloop + httptools (uvicorn[standard])
  reuse    lab_env.runtime.actors.reuse_sidecar_connections(): one keep-alive session
  gc       lab_env.runtime.actors.tune_gc_for_actors(): Python's cyclic GC walks every
           live actor on each full collection; freeze startup objects and
           collect less often
  2hosts   2 hosts of the type; placement spreads the actors
  3hosts   3 hosts

In the same run, as floors and checks: lab 01's httpx loop against the best
configuration (is the client the bottleneck?), wrk calling the same active
actors (the raw client checked against a C load generator), the sidecar's
service-invocation hop to a no-op endpoint, and redis-benchmark GET on the
same Redis. Prints the tables and writes bench/results/actors.{json,md}; also
the activation curve (bench/results/actors.png). The Python SDK's actor host
is HTTP only (dapr.ext.fastapi / flask); dapr.ext.grpc.App serves service
invocation, pub/sub and bindings, not actors, so there is no gRPC actor host
to measure in 1.18.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env import stop_app  # noqa: E402
from lab_env.core.profile import current  # noqa: E402
from lab_env.core.versions import pins  # noqa: E402
from lab_env.runtime import scale, sidecar  # noqa: E402
from lab_env.runtime.actors import actor_type_in  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ASYNCIO, UVLOOP = scale.ASYNCIO, scale.UVLOOP
METHOD = "Stock"  # the first call of a product loads its stock and reservations from Redis
# The SDK as shipped (a new connection per state call) and Python's default GC thresholds.
SHIPPED = {"LAB_REUSE_SIDECAR_CONNECTIONS": "0", "LAB_TUNE_GC": "0"}
REUSED = {
    "LAB_REUSE_SIDECAR_CONNECTIONS": "1",
    "LAB_TUNE_GC": "0",
}  # lab_env.runtime.actors.reuse_sidecar_connections()
TUNED = {"LAB_REUSE_SIDECAR_CONNECTIONS": "1", "LAB_TUNE_GC": "1"}  # + lab_env.runtime.actors.tune_gc_for_actors()
CONFIGS = {
    "ref": ("1 host, asyncio + h11, SDK as shipped", 1, ASYNCIO, SHIPPED),
    "uvloop": ("1 host, uvloop + httptools, SDK as shipped", 1, UVLOOP, SHIPPED),
    "reuse": ("1 host, uvloop + httptools, reused connections", 1, UVLOOP, REUSED),
    "gc": ("1 host, uvloop + httptools, reused connections, GC tuned", 1, UVLOOP, TUNED),
    "2hosts": ("2 hosts, uvloop + httptools, reused connections, GC tuned", 2, UVLOOP, TUNED),
    "3hosts": ("3 hosts, uvloop + httptools, reused connections, GC tuned", 3, UVLOOP, TUNED),
}
MARKS = (10_000, 50_000, 100_000)


def start_hosts(stack: ExitStack, key: str, count: int, server: list[str], env: dict[str, str]) -> tuple[list, str]:
    hosts = scale.start_hosts(count, name=f"actbench-{key}", server=server, env=env)
    for host in hosts:
        stack.callback(stop_app, host)
    return hosts, actor_type_in(hosts[0], "ProductActor")


def measure(key: str, actors: int, calls: int, in_flight: int) -> dict:
    label, count, flags, env = CONFIGS[key]
    with ExitStack() as stack:
        hosts, actor_type = start_hosts(stack, key, count, flags, env)
        client_cpu = time.process_time()
        slices = sorted({*range(5_000, actors, 5_000), *(m for m in MARKS if m < actors)})
        print(f"{label}: activating {actors:,} actors", flush=True)
        activation = scale.activate(
            hosts,
            actor_type,
            actors,
            METHOD,
            in_flight=in_flight,
            slices=slices,
            progress=False,
            prefix=f"{key}-",
            count_errors=True,
        )
        ids = random.Random(1).choices(range(actors), k=calls)
        print(f"{label}: {calls:,} calls to active actors", flush=True)
        again = scale.run(
            hosts, scale.actor_calls(actor_type, ids, METHOD, prefix=f"{key}-"), in_flight=in_flight, count_errors=True
        )[0]
        client_cpu = time.process_time() - client_cpu
        spread = scale.placement_spread(hosts, actor_type)
        wrk = (
            scale.wrk_calls(hosts[0], actor_type, actors, METHOD, in_flight=in_flight, prefix=f"{key}-")
            if shutil.which("wrk")
            else None
        )
    total_s = sum(s.seconds for s in activation)
    return {
        "label": label,
        "hosts": count,
        "actor_type": actor_type,
        "activations_per_s": actors / total_s,
        "activation_s": total_s,
        "activation_p50_ms": statistics.median(s.p50_ms for s in activation),
        "activation_p99_ms": max(s.p99_ms for s in activation),
        "activation_p99_all_ms": scale.percentile([ms for s in activation for ms in s.latencies_ms], 0.99),
        "curve": [s.as_dict() for s in activation],
        "calls_per_s": again.rate,
        "calls_p50_ms": again.p50_ms,
        "calls_p99_ms": again.p99_ms,
        "cpu_s": {**activation[-1].cpu_s, "client (this process)": client_cpu},
        "cpu_s_calls": again.cpu_s,  # run() counts CPU from its own start
        "rss_mb_at": {s.actors: s.rss_mb for s in activation if s.actors in MARKS or s.actors == actors},
        "placement_spread": spread,
        "wrk": wrk,
        "errors": [e for s in [*activation, again] for e in s.errors],
    }


async def _httpx_loop(url: str, actor_type: str, ids: range, in_flight: int) -> float:
    """Lab 01's loop: an httpx AsyncClient and a semaphore."""
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=in_flight)) as client:

        async def one(i: int) -> None:
            async with gate:
                (await client.put(sidecar.actor_method_path(actor_type, f"h-{i}", METHOD))).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started


def floors(in_flight: int, calls: int) -> dict:
    out: dict = {}
    with ExitStack() as stack:
        hosts, actor_type = start_hosts(stack, "floor", 1, UVLOOP, REUSED)
        n = min(calls, 5_000)
        seconds = asyncio.run(_httpx_loop(hosts[0].sidecar_url, actor_type, range(n), in_flight))
        raw = scale.run(hosts, scale.actor_calls(actor_type, range(n), METHOD, prefix="r-"), in_flight=in_flight)[0]
        out["httpx_activations_per_s"] = n / seconds
        out["raw_activations_per_s"] = raw.rate
        out["activations_compared"] = n
        noop = scale.run(
            hosts, [("GET", sidecar.invoke_path(hosts[0].app_id, "noop"), b"")] * calls, in_flight=in_flight
        )[0]
        out["noop_invoke_per_s"], out["noop_p50_ms"], out["noop_p99_ms"] = noop.rate, noop.p50_ms, noop.p99_ms
    if shutil.which("redis-benchmark"):
        prof = current()
        text = subprocess.run(
            [
                "redis-benchmark",
                "-h",
                prof.redis_host,
                "-p",
                str(prof.redis_port),
                "-t",
                "get",
                "-n",
                "200000",
                "-c",
                str(in_flight),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        found = re.search(r"GET: ([\d.,]+) requests per second", text)
        if found:
            out["redis_get_per_s"] = float(found[1].replace(",", ""))
    return out


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for row in rows.values():
        xs = [c["actors"] for c in row["curve"]]
        left.plot(xs, [c["rate"] for c in row["curve"]], label=row["label"])
        right.plot(xs, [c["p99_ms"] for c in row["curve"]], label=row["label"])
    left.set(xlabel="actors activated", ylabel="activations/s (per slice)", title="Activation rate")
    right.set(xlabel="actors activated", ylabel="p99 ms (per slice)", title="Activation latency", yscale="log")
    left.axhline(830, linestyle=":", color="black", label="target 830/s")
    right.axhline(250, linestyle=":", color="black", label="target 250 ms")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _names(keys) -> dict[str, str]:
    """'actbench-2hosts-1-ab12cd sidecar' -> 'host 2 sidecar'."""
    out = {}
    for key in keys:
        app_id, _, role = key.partition(" ")
        parts = app_id.split("-")
        out[key] = f"host {int(parts[-2]) + 1} {role}" if role and len(parts) >= 3 and parts[-2].isdigit() else key
    return out


def _all(row: dict) -> str:
    return (
        f"{row['activation_p99_all_ms']:.0f}" if "activation_p99_all_ms" in row else "-"
    )  # older runs kept no latencies


def render(data: dict) -> str:
    args, rows, extra, env = data["args"], data["rows"], data["floors"], data["env"]
    keys = list(rows)
    ref = rows[keys[0]]
    best = max(rows.values(), key=lambda r: r["activations_per_s"])

    def per_process(values: dict) -> str:
        names = _names(values)
        return ", ".join(f"{names[k]} {v:.0f}" for k, v in values.items())

    lines = [
        "| configuration | activations/s | 100k in | act. p50 / p99 ms (all) / p99 (worst slice) | calls/s (active) | "
        "call p50 / p99 ms | failed calls | activations/s vs ref | calls/s vs ref |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['label']} | {r['activations_per_s']:.0f} | {r['activation_s'] * 100_000 / args['actors']:.0f} s | "
            f"{r['activation_p50_ms']:.0f} / {_all(r)} / {r['activation_p99_ms']:.0f} | {r['calls_per_s']:.0f} | "
            f"{r['calls_p50_ms']:.0f} / {r['calls_p99_ms']:.0f} | {len(r['errors'])} | "
            f"{r['activations_per_s'] / ref['activations_per_s']:.2f}x | {r['calls_per_s'] / ref['calls_per_s']:.2f}x |"
        )
    mem = ["| configuration | actors | RSS MB per process |", "| --- | ---: | --- |"]
    for r in rows.values():
        for at, rss in r["rss_mb_at"].items():
            mem.append(f"| {r['label']} | {int(at):,} | {per_process(rss)} |")
    cpu = [
        "| configuration | CPU s during activation | CPU s during calls | placement spread |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows.values():
        cpu.append(
            f"| {r['label']} | {per_process(r['cpu_s'])} | {per_process(r['cpu_s_calls'])} | "
            f"{', '.join(f'{v:,}' for v in r['placement_spread'].values())} |"
        )
    checks = [
        "| measure | per s | vs best activations/s |",
        "| --- | ---: | ---: |",
        f"| lab 01's httpx loop, activations ({extra['activations_compared']:,}, 1 host) | "
        f"{extra['httpx_activations_per_s']:.0f} | "
        f"{extra['httpx_activations_per_s'] / best['activations_per_s']:.2f}x |",
        f"| raw asyncio client, the same activations | {extra['raw_activations_per_s']:.0f} | "
        f"{extra['raw_activations_per_s'] / best['activations_per_s']:.2f}x |",
        f"| sidecar invoke of a no-op endpoint (p50 {extra['noop_p50_ms']:.0f} ms, "
        f"p99 {extra['noop_p99_ms']:.0f} ms) | "
        f"{extra['noop_invoke_per_s']:.0f} | {extra['noop_invoke_per_s'] / best['activations_per_s']:.2f}x |",
    ]
    for r in rows.values():
        if r["wrk"]:
            checks.append(
                f"| wrk, calls to active actors, {r['label']} (raw client: {r['calls_per_s']:.0f}/s) | "
                f"{r['wrk']['calls_per_s']:.0f} | {r['wrk']['calls_per_s'] / best['activations_per_s']:.2f}x |"
            )
    if "redis_get_per_s" in extra:
        checks.append(
            f"| redis-benchmark GET, same Redis, {args['in_flight']} clients | {extra['redis_get_per_s']:.0f} | "
            f"{extra['redis_get_per_s'] / best['activations_per_s']:.1f}x |"
        )
    return (
        f"# 100,000 actors on one machine\n\n"
        f"`python bench/actors_bench.py --actors {args['actors']} --calls {args['calls']} "
        f"--in-flight {args['in_flight']}` ({env}). "
        f"Actor: the reference ProductActor (lab_env.marketplace.agents.product_host), "
        f"method `Stock`. Load: lab_env.runtime.scale's raw asyncio client, "
        f"{args['in_flight']} calls in flight spread over the "
        f"hosts' sidecars. The reference is the first row. Activation p99 is given over all activations and "
        f"for the worst slice of 5,000.\n\n"
        + "\n".join(lines)
        + "\n\nMemory at 10k, 50k and 100k actors:\n\n"
        + "\n".join(mem)
        + "\n\nCPU seconds per process (who is the bottleneck) and how placement spread the actors:\n\n"
        + "\n".join(cpu)
        + "\n\nFloors and checks (same run):\n\n"
        + "\n".join(checks)
        + "\n\n![activation curve](actors.png)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--render", action="store_true", help="only rewrite actors.md and actors.png from actors.json")
    args = parser.parse_args()
    if args.render:
        data = json.loads((RESULTS / "actors.json").read_text())
    else:
        rows = {}
        for k in args.configs.split(","):
            rows[k] = measure(k, args.actors, args.calls, args.in_flight)
            print(
                f"{rows[k]['label']}: {rows[k]['activations_per_s']:.0f} activations/s, {rows[k]['calls_per_s']:.0f} "
                f"calls/s, {len(rows[k]['errors'])} failed calls",
                flush=True,
            )
            RESULTS.mkdir(parents=True, exist_ok=True)  # partial results survive a failure in a later configuration
            (RESULTS / "actors.partial.json").write_text(json.dumps(rows, indent=1, default=str))
        env = (
            f"daprd {pins().dapr_runtime}, Python SDK {pins().dapr_python_sdk}, "
            f"Python {platform.python_version()}, 2 cores"
        )
        data = {"args": vars(args), "env": env, "rows": rows, "floors": floors(args.in_flight, args.calls)}
        (RESULTS / "actors.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        (RESULTS / "actors.partial.json").unlink(missing_ok=True)
    text = render(data)
    print(text)
    (RESULTS / "actors.md").write_text(text)
    plot(data["rows"], RESULTS / "actors.png")


if __name__ == "__main__":
    main()
