"""Benchmark of the native lab stack; prints a table and writes JSON + Markdown.

    .venv/bin/python bench/stack_bench.py [--cold] [--calls 1000]

Measures, in one run on this machine:
- cold provisioning (--cold): `lab-env setup` into empty cache, Dapr home,
  Go build cache, Go module cache and Maven repository;
- warm `lab-env up` of the whole stack, next to each component started alone
  (a parallel start should take about as long as the slowest one);
- app-plus-sidecar ready time (median of 5);
- actor-call latency p50/p99 over N sequential ActorProxy calls, and
  throughput with 16 calls in flight;
- redis-benchmark SET throughput on the same Redis, for scale.

It stops and restarts the stack: do not run it while labs or tests use it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "apps"))

from counter_interface import CounterInterface
from dapr.actor import ActorId, ActorProxy

from lab_env import dapr_app, unique_name, uvicorn_command
from lab_env.stack import down, services, up

RESULTS = ROOT / "bench" / "results"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cold_provisioning() -> float:
    with tempfile.TemporaryDirectory(prefix="labenv-cold-") as tmp:
        env = {
            **os.environ,
            "LAB_ENV_CACHE": f"{tmp}/cache", "DAPR_HOME": f"{tmp}/dapr",
            "GOCACHE": f"{tmp}/gocache", "GOMODCACHE": f"{tmp}/gomodcache",
            "MAVEN_OPTS": f"-Dmaven.repo.local={tmp}/m2",
        }
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lab_env.cli", "setup"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        # Go's module cache is read-only by design; make it removable.
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)
        return elapsed


def stack_start_times() -> dict[str, float]:
    times = {}
    for svc in services():
        down()
        times[svc.name] = timed(lambda name=svc.name: up(progress=False, only=[name]))
    down()
    times["whole stack (parallel)"] = timed(lambda: up(progress=False))
    return times


def app_ready_times(n: int = 5) -> list[float]:
    actor_type = unique_name("BenchCounter").replace("-", "")
    out = []
    for i in range(n):
        start = time.perf_counter()
        with dapr_app(f"{unique_name('bench-ready')}-{i}", uvicorn_command("counter_actor:app"),
                      cwd=ROOT / "tests" / "apps", components=["statestore"], env={"ACTOR_TYPE": actor_type}):
            out.append(time.perf_counter() - start)
    return out


def actor_calls(calls: int) -> dict[str, float]:
    actor_type = unique_name("BenchCounter").replace("-", "")
    with dapr_app(unique_name("bench-actors"), uvicorn_command("counter_actor:app"),
                  cwd=ROOT / "tests" / "apps", components=["statestore"], env={"ACTOR_TYPE": actor_type}) as app:
        app.use_sdk()

        async def run() -> dict[str, float]:
            proxy = ActorProxy.create(actor_type, ActorId("bench"), CounterInterface)
            await proxy.Increment(1)  # activation outside the measurement
            latencies = []
            for _ in range(calls):
                t = time.perf_counter()
                await proxy.Increment(1)
                latencies.append(time.perf_counter() - t)
            proxies = [ActorProxy.create(actor_type, ActorId(f"c{i}"), CounterInterface) for i in range(16)]
            for p in proxies:
                await p.Increment(1)
            queue = list(range(calls))
            start = time.perf_counter()

            async def worker(p):
                while queue:
                    queue.pop()
                    await p.Increment(1)

            await asyncio.gather(*(worker(p) for p in proxies))
            elapsed = time.perf_counter() - start
            q = statistics.quantiles(latencies, n=100)
            return {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000,
                    "sequential_per_s": calls / sum(latencies), "concurrent16_per_s": calls / elapsed}

        return asyncio.run(run())


def redis_set_throughput() -> float:
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "-t", "set", "-n", "100000",
                          "-q", "-c", "16"], capture_output=True, text=True, check=True).stdout
    # "SET: 123456.79 requests per second, p50=0.111 msec"
    line = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("SET:")][-1]
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="also measure cold provisioning (minutes)")
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    result: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "calls": args.calls}
    if args.cold:
        cold = cold_provisioning()
        result["cold_provisioning_s"] = cold
        rows.append(("cold provisioning (`lab-env setup`, empty caches)", f"{cold:.0f} s", ""))

    starts = stack_start_times()
    result["start_s"] = starts
    slowest_name, slowest = max(((k, v) for k, v in starts.items() if "whole" not in k), key=lambda kv: kv[1])
    whole = starts["whole stack (parallel)"]
    for name, secs in starts.items():
        rows.append((f"start {name}", f"{secs:.2f} s", f"{secs / slowest:.2f}x slowest alone" if "whole" in name else ""))

    ready = app_ready_times()
    result["app_ready_s"] = ready
    rows.append(("app + sidecar ready (median of 5)", f"{statistics.median(ready):.2f} s", ""))

    calls = actor_calls(args.calls)
    result["actor_calls"] = calls
    rows.append((f"actor call p50 ({args.calls} sequential)", f"{calls['p50_ms']:.2f} ms", ""))
    rows.append((f"actor call p99 ({args.calls} sequential)", f"{calls['p99_ms']:.2f} ms", ""))
    rows.append(("actor calls/s, sequential", f"{calls['sequential_per_s']:.0f}", ""))
    redis_ops = redis_set_throughput()
    result["redis_set_per_s"] = redis_ops
    rows.append(("actor calls/s, 16 in flight", f"{calls['concurrent16_per_s']:.0f}",
                 f"{calls['concurrent16_per_s'] / redis_ops:.3f}x redis SET"))
    rows.append(("redis-benchmark SET/s (16 clients), same server", f"{redis_ops:.0f}", "reference"))
    result["whole_vs_slowest"] = whole / slowest
    result["slowest_component"] = slowest_name

    table = "| measurement | value | ratio |\n| --- | ---: | --- |\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stack.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "stack.md").write_text(f"# Stack benchmark\n\nMachine: {result['machine']}. Command: "
                                      f"`python bench/stack_bench.py{' --cold' if args.cold else ''}`.\n\n{table}")


if __name__ == "__main__":
    main()
