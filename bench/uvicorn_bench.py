"""Actor throughput with uvicorn's plain asyncio + h11 versus uvloop + httptools.

    .venv/bin/python bench/uvicorn_bench.py [--actors 3000] [--in-flight 32]

The same actor app (tests/apps/counter_actor.py) and its sidecar, served
both ways in one run; the asyncio + h11 run is the reference. The load is
lab 01's own loop: an async httpx client calling the sidecar's actor API
with a fixed number of calls in flight. First every actor is activated
(one call each), then every active actor is called again. CPU seconds per
process show who is busy. Prints a table and writes bench/results/uvicorn.{json,md}.
Needs the stack (`lab-env up`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env import start_app, stop_app, unique_name  # noqa: E402

RESULTS = ROOT / "bench" / "results"
APPS = ROOT / "tests" / "apps"
MODES = {"asyncio + h11": ["--loop", "asyncio", "--http", "h11"],
         "uvloop + httptools": ["--loop", "uvloop", "--http", "httptools"]}


async def _calls(url: str, actor_type: str, ids: range, in_flight: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=in_flight)) as client:
        async def one(i: int) -> None:
            async with gate:
                started = time.perf_counter()
                (await client.put(f"/v1.0/actors/{actor_type}/a-{i}/method/Get")).raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started, latencies


# wrk (C, one thread): calls to random already-active actors, so the client is not the bottleneck.
_WRK_SCRIPT = """
local n, kind = tonumber(os.getenv("ACTORS")), os.getenv("ACTOR_TYPE")
request = function()
  return wrk.format("PUT", "/v1.0/actors/" .. kind .. "/a-" .. math.random(0, n - 1) .. "/method/Get")
end
"""


def _wrk(url: str, actor_type: str, actors: int, in_flight: int, seconds: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{in_flight}", f"-d{seconds}s", "--latency", "-s", script.name, url],
                             capture_output=True, text=True, check=True, timeout=seconds + 60,
                             env={**os.environ, "ACTORS": str(actors), "ACTOR_TYPE": actor_type}).stdout
    finally:
        os.unlink(script.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"calls_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50_ms": ms("50%"),
            "p99_ms": ms("99%"), "errors": int(errors[1]) if errors else 0}


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(mode: str, flags: list[str], actors: int, in_flight: int) -> dict:
    actor_type = unique_name(f"Bench{mode.split()[0].capitalize()}")
    command = [sys.executable, "-m", "uvicorn", "counter_actor:app", "--host", "127.0.0.1", "--port", "{app_port}",
               "--log-level", "warning", *flags]
    app = start_app(unique_name(f"uvbench-{mode[:3]}"), command, cwd=APPS, components=["statestore"],
                    env={"ACTOR_TYPE": actor_type})
    try:
        cpu_before = {"app": _cpu(app.app_pid), "sidecar": _cpu(app.sidecar_pid)}
        client_before = time.process_time()  # this process is the load generator
        activate_s, activate_lat = asyncio.run(_calls(app.sidecar_url, actor_type, range(actors), in_flight))
        again_s, again_lat = asyncio.run(_calls(app.sidecar_url, actor_type, range(actors), in_flight))
        cpu = {"app": _cpu(app.app_pid) - cpu_before["app"], "sidecar": _cpu(app.sidecar_pid) - cpu_before["sidecar"],
               "client": time.process_time() - client_before}
        wrk = _wrk(app.sidecar_url, actor_type, actors, in_flight, 10) if shutil.which("wrk") else None
    finally:
        stop_app(app)

    def pct(values: list[float], q: float) -> float:
        return 1000 * statistics.quantiles(values, n=100)[q - 1]

    return {"activations_per_s": actors / activate_s, "calls_per_s": actors / again_s,
            "p50_ms": pct(again_lat, 50), "p99_ms": pct(again_lat, 99),
            "activation_p99_ms": pct(activate_lat, 99), "cpu_s": cpu, "wrk": wrk}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args()
    rows = {mode: measure(mode, flags, args.actors, args.in_flight) for mode, flags in MODES.items()}
    ref = rows["asyncio + h11"]
    table = ("| app served by | activations/s | calls/s (active) | p50 ms | p99 ms | activation p99 ms | "
             "CPU s app / sidecar / client | calls/s vs reference |\n"
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n"
             + "".join(f"| {mode} | {r['activations_per_s']:.0f} | {r['calls_per_s']:.0f} | {r['p50_ms']:.1f} | "
                       f"{r['p99_ms']:.1f} | {r['activation_p99_ms']:.1f} | {r['cpu_s']['app']:.1f} / "
                       f"{r['cpu_s']['sidecar']:.1f} / {r['cpu_s']['client']:.1f} | "
                       f"{r['calls_per_s'] / ref['calls_per_s']:.2f}x |\n" for mode, r in rows.items()))
    if all(r["wrk"] for r in rows.values()):
        table += ("\nThe same apps under wrk (one C thread, 10 s, random active actors), where the client is not the "
                  "bottleneck:\n\n| app served by | calls/s | p50 ms | p99 ms | non-2xx | calls/s vs reference |\n"
                  "| --- | ---: | ---: | ---: | ---: | ---: |\n"
                  + "".join(f"| {mode} | {r['wrk']['calls_per_s']:.0f} | {r['wrk']['p50_ms']:.1f} | "
                            f"{r['wrk']['p99_ms']:.1f} | {r['wrk']['errors']} | "
                            f"{r['wrk']['calls_per_s'] / ref['wrk']['calls_per_s']:.2f}x |\n" for mode, r in rows.items()))
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "uvicorn.json").write_text(json.dumps({"actors": args.actors, "in_flight": args.in_flight,
                                                       "runs": rows}, indent=2) + "\n")
    (RESULTS / "uvicorn.md").write_text(
        f"# uvicorn: asyncio + h11 versus uvloop + httptools\n\n2 cores. {args.actors} actors of "
        f"tests/apps/counter_actor.py, {args.in_flight} calls in flight from an async httpx client (lab 01's "
        f"loop), through the sidecar. Command: `python bench/uvicorn_bench.py --actors {args.actors}`. "
        f"The reference is the asyncio + h11 row of the same run.\n\n{table}")


if __name__ == "__main__":
    main()
