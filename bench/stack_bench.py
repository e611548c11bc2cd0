"""Benchmark of the native lab stack; prints a table and writes JSON + Markdown.

    .venv/bin/python bench/stack_bench.py [--cold] [--calls 1000]

Measures, in one run on this machine:
- first start (--cold): `make lab` in a fresh clone of this repo until
  JupyterLab answers, with empty caches (uv's, pip's, lab-env's, Dapr home,
  Go build and module caches, Maven repository; apt packages such as
  redis-server stay installed), each phase timed from the command's output;
  then the warm path: `make lab` again in the same clone (median of 3);
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

from dapr.actor import ActorId, ActorProxy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "apps"))

from counter_interface import CounterInterface  # noqa: E402  (tests/apps, on sys.path above)

from lab_env import dapr_app, unique_name, uvicorn_command  # noqa: E402
from lab_env.stack import down, services, up  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _make_lab(clone: Path, env: dict[str, str], marks: dict[str, str]) -> tuple[float, dict[str, float], list[str]]:
    """Run `make lab` in ``clone`` until JupyterLab answers; seconds to that,
    the time each of ``marks`` (label -> output regex) was first seen, and the output."""
    import re
    import secrets
    import signal
    import threading

    import httpx

    from lab_env.core.ports import free_ports

    (port,) = free_ports(1)
    token = secrets.token_hex(8)
    seen: dict[str, float] = {}
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "lab", f"LAB_ARGS=--port {port}"],
        cwd=clone,
        env={**env, "JUPYTER_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            for label, pattern in marks.items():
                if label not in seen and re.search(pattern, line):
                    seen[label] = time.perf_counter() - start

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while True:  # readiness probe: JupyterLab's API answers with the token
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/api/status", params={"token": token}, timeout=2).status_code
                    == 200
                ):
                    return time.perf_counter() - start, seen, lines
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("make lab exited:\n" + "".join(lines[-40:]))
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        subprocess.run([str(clone / ".venv" / "bin" / "lab-env"), "down"], env=env, capture_output=True, check=False)


# Phases of a first start, from the lines `make lab` prints (first time seen).
FIRST_START_MARKS = {
    "uv installed (venv, pip install uv)": r"Successfully installed uv",
    "uv sync done": r"Installed \d+ packages",
    "redis ready / setup steps begin": r"building Dapr|fetching Kafka",
    "setup complete": r"setup complete",
    "stack started": r"ok\s+scheduler|started:",
}


def first_start(warm_runs: int = 3) -> dict:
    """`make lab` from a fresh clone with empty caches, then warm, as above."""
    with tempfile.TemporaryDirectory(prefix="labenv-cold-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {
            **os.environ,
            "UV_CACHE_DIR": f"{tmp}/uv",
            "PIP_CACHE_DIR": f"{tmp}/pip",
            "LAB_ENV_CACHE": f"{tmp}/cache",
            "LAB_ENV_STATE": f"{tmp}/state",
            "DAPR_HOME": f"{tmp}/dapr",
            "GOCACHE": f"{tmp}/gocache",
            "GOMODCACHE": f"{tmp}/gomodcache",
            "MAVEN_OPTS": f"-Dmaven.repo.local={tmp}/m2",
        }
        env.pop("VIRTUAL_ENV", None)
        try:
            cold, phases, output = _make_lab(clone, env, FIRST_START_MARKS)
            warm = [_make_lab(clone, env, {})[0] for _ in range(warm_runs)]
        finally:
            # Go's module cache is read-only by design; make it removable.
            subprocess.run(["chmod", "-R", "u+w", tmp], check=False)
    # "setup complete (redis 0 s, dapr runtime 212 s, kafka 41 s, kcat 0 s): ..." (steps that overlap)
    import re

    summary = next((line for line in output if line.startswith("setup complete (")), "")
    steps = {name: float(sec) for name, sec in re.findall(r"([a-z][a-z ]*?) (\d+) s", summary.split(":")[0])}
    return {"cold_s": cold, "phases_s": phases, "setup_steps_s": steps, "warm_s": warm}


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
        with dapr_app(
            f"{unique_name('bench-ready')}-{i}",
            uvicorn_command("counter_actor:app"),
            cwd=ROOT / "tests" / "apps",
            components=["statestore"],
            env={"ACTOR_TYPE": actor_type},
        ):
            out.append(time.perf_counter() - start)
    return out


def actor_calls(calls: int) -> dict[str, float]:
    actor_type = unique_name("BenchCounter").replace("-", "")
    with dapr_app(
        unique_name("bench-actors"),
        uvicorn_command("counter_actor:app"),
        cwd=ROOT / "tests" / "apps",
        components=["statestore"],
        env={"ACTOR_TYPE": actor_type},
    ) as app:
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
            return {
                "p50_ms": q[49] * 1000,
                "p99_ms": q[98] * 1000,
                "sequential_per_s": calls / sum(latencies),
                "concurrent16_per_s": calls / elapsed,
            }

        return asyncio.run(run())


def redis_set_throughput() -> float:
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "-t", "set", "-n", "100000", "-q", "-c", "16"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # "SET: 123456.79 requests per second, p50=0.111 msec"
    line = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("SET:")][-1]
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--cold", action="store_true", help="also measure a first `make lab` from a fresh clone (minutes)"
    )
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    result: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "calls": args.calls}
    if args.cold:
        down()  # the fresh clone starts its own stack on the same ports
        first = first_start()
        result["first_start"] = first
        cold, warm = first["cold_s"], statistics.median(first["warm_s"])
        rows.append(
            (
                "`make lab` from a fresh clone, empty caches, until JupyterLab answers",
                f"{cold:.0f} s",
                f"{cold / 360:.2f}x the 6 min target",
            )
        )
        previous = 0.0
        for label, at in sorted(first["phases_s"].items(), key=lambda kv: kv[1]):
            rows.append(
                (
                    f"&nbsp;&nbsp;{label} (at {at:.0f} s)",
                    f"{at - previous:.0f} s",
                    f"{(at - previous) / cold:.0%} of cold",
                )
            )
            previous = at
        rows.append(
            (
                "&nbsp;&nbsp;stack up and JupyterLab answering",
                f"{cold - previous:.0f} s",
                f"{(cold - previous) / cold:.0%} of cold",
            )
        )
        for step, secs in first["setup_steps_s"].items():
            rows.append(
                (f"&nbsp;&nbsp;&nbsp;&nbsp;setup step: {step} (dapr runtime and kafka overlap)", f"{secs:.0f} s", "")
            )
        rows.append(
            (
                "`make lab` again, warm (median of 3)",
                f"{warm:.1f} s",
                f"{warm / 30:.2f}x the 30 s target; {cold / warm:.0f}x faster than cold",
            )
        )

    starts = stack_start_times()
    result["start_s"] = starts
    slowest_name, slowest = max(((k, v) for k, v in starts.items() if "whole" not in k), key=lambda kv: kv[1])
    whole = starts["whole stack (parallel)"]
    for name, secs in starts.items():
        rows.append(
            (f"start {name}", f"{secs:.2f} s", f"{secs / slowest:.2f}x slowest alone" if "whole" in name else "")
        )

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
    rows.append(
        (
            "actor calls/s, 16 in flight",
            f"{calls['concurrent16_per_s']:.0f}",
            f"{calls['concurrent16_per_s'] / redis_ops:.3f}x redis SET",
        )
    )
    rows.append(("redis-benchmark SET/s (16 clients), same server", f"{redis_ops:.0f}", "reference"))
    result["whole_vs_slowest"] = whole / slowest
    result["slowest_component"] = slowest_name

    table = "| measurement | value | ratio |\n| --- | ---: | --- |\n" + "".join(
        f"| {a} | {b} | {c} |\n" for a, b, c in rows
    )
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stack.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "stack.md").write_text(
        f"# Stack benchmark\n\nMachine: {result['machine']}. Command: "
        f"`python bench/stack_bench.py{' --cold' if args.cold else ''}`.\n\n{table}"
    )


if __name__ == "__main__":
    main()
