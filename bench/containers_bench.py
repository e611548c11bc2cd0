"""What containers cost here, measured on lab-env's own Docker engine with the bakery's images.

    .venv/bin/python bench/containers_bench.py [--runs 3] [--actors 5000]

In one run on this machine:
- the engine: `engine.start()` until it answers, and `engine.stop()` (median of --runs);
- the images: every image kept (recipe unchanged), then each rebuilt from scratch
  (docker's layer cache off; the Debian base is a fresh mmdebstrap), and all of them;
- the devcontainer's services (redis, kafka, placement, scheduler) from its compose file
  up to healthy, next to the native stack's `lab-env up` (the reference: ratio 1.00);
- the whole devcontainer with the Dev Containers CLI, up to postStart's green `lab-env doctor`:
  first with its cache volumes empty (onCreate downloads and builds), then again;
- lab 05's marketplace home up to healthy (images built), and the memory of each agent
  as containers (agent + daprd sidecar + pod, from `docker stats`), next to one agent as
  an app and sidecar process pair and one agent as an actor (lab_env.marketplace.homes.density);
- how many agents fit in this machine's memory each way (bench/results/containers.png).

It stops and restarts the native stack and the engine: run it alone, never beside the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env import start_app, stop_app, unique_name, uvicorn_command  # noqa: E402
from lab_env.marketplace.homes import container, density  # noqa: E402
from lab_env.marketplace.homes.spec import load  # noqa: E402
from lab_env.runtime.actors import actor_type  # noqa: E402
from lab_env.stack import devcontainer_run, engine  # noqa: E402
from lab_env.stack.images import bakery, catalog  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LAB_ENV = [sys.executable, "-m", "lab_env.cli.main"]
SPEC = load(ROOT / "lab_env" / "marketplace" / "homes" / "marketplace.yaml")
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_of(runs: int, fn) -> float:
    return statistics.median(timed(fn) for _ in range(runs))


def lab_env(*args: str) -> None:
    subprocess.run([*LAB_ENV, *args], check=True, capture_output=True, cwd=ROOT)


def memory(text: str) -> float:
    """Bytes in a `docker stats` MemUsage figure such as "41.2MiB"."""
    number = text.rstrip("".join({c for unit in UNITS for c in unit}))
    return float(number) * UNITS[text[len(number) :]]


def container_memory(ours: engine.Engine, project: str) -> dict[str, float]:
    """Bytes each container of a compose project uses now, by service name."""
    out = ours.check("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}")
    found = {}
    for line in out.splitlines():
        name, usage = line.split(" ", 1)
        if name.startswith(f"{project}_"):
            found[name.removeprefix(f"{project}_").removesuffix("_1")] = memory(usage.split(" / ")[0])
    return found


def container_rss(ours: engine.Engine, project: str, services: list[str]) -> dict[str, float]:
    """Resident bytes of each container's processes, as psutil reads a process pair's: the same
    measure as the native side (docker stats reports the cgroup's usage, which leaves out
    file-backed pages such as the mapped binaries)."""
    found = {}
    for service in services:
        lines = ours.check("top", container.compose_container(ours, project, service), "-o", "pid").split()[1:]
        found[service] = float(density.rss([int(pid) for pid in lines]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--actors", type=int, default=5000)
    args = parser.parse_args()
    os.environ[catalog.IMAGE_SET_VAR] = "local"
    if (other := engine.find()) is not None and not other.managed:
        print(f"another Docker engine answers on {other.host}: this bench measures lab-env's own")
        return 2
    engine.stop()
    result: dict[str, object] = {
        "runs": args.runs,
        "actors": args.actors,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }

    # The engine.
    starts, stops = [], []
    for _ in range(args.runs):
        starts.append(timed(engine.start))
        stops.append(timed(engine.stop))
    result["engine_start_s"], result["engine_stop_s"] = statistics.median(starts), statistics.median(stops)
    ours = engine.start()
    try:
        # The images.
        bakery.build(ours)
        result["images_kept_s"] = timed(lambda: bakery.build(ours))
        cold = {}
        for name in catalog.catalog():
            cold[name] = timed(lambda n=name: bakery.build(ours, [n], force={n}))
        result["image_cold_s"] = cold
        result["images_cold_all_s"] = sum(cold.values())
        result["image_mb"] = {row.name: row.size_mb for row in bakery.status(ours)}

        # The devcontainer, on a copy of this checkout: its workspace image is built (layer cache on).
        with tempfile.TemporaryDirectory() as folder:
            copy = devcontainer_run.copy_repo(ROOT, Path(folder) / "labs")
            for volume in devcontainer_run.CACHE_VOLUMES:
                ours.docker("volume", "rm", "-f", volume)
            try:
                result["devcontainer_cold_s"] = timed(lambda: devcontainer_run.up(ours, copy))
                devcontainer_run.down(ours, copy)
                result["devcontainer_warm_s"] = timed(lambda: devcontainer_run.up(ours, copy))
            finally:
                devcontainer_run.down(ours, copy)

        # The stack: native (reference) and as containers.
        lab_env("down")
        result["native_stack_up_s"] = timed(lambda: lab_env("up"))
        project = f"labenv{secrets.token_hex(3)}"
        network = ""

        def compose_up() -> None:
            nonlocal network
            network = container.stack_up(ours, project)

        result["compose_stack_up_s"] = timed(compose_up)
        home = f"home{secrets.token_hex(3)}"
        env = {"OPENAI_API_KEY": "not-used-by-this-bench"}
        with tempfile.TemporaryDirectory() as folder:
            compose_file = container.write(SPEC, Path(folder) / SPEC.home)
            try:
                container.home_up(ours, compose_file, home, network, env)  # builds the agent images
                container.home_down(ours, compose_file, home, env)
                result["home_up_s"] = timed(lambda: container.home_up(ours, compose_file, home, network, env))
                time.sleep(10)  # let the agents settle before their memory is read (idle, as the processes are)
                used = container_memory(ours, home)
                rss = container_rss(ours, home, sorted(used))
                result["container_mb"] = {k: v / 2**20 for k, v in sorted(used.items())}
                result["container_rss_mb"] = {k: v / 2**20 for k, v in sorted(rss.items())}
                per_agent = {
                    a.app_id: sum(rss.get(f"{a.app_id}{part}", 0.0) for part in ("", "-dapr", "-pod"))
                    for a in SPEC.agents
                }
                result["per_agent_container_mb"] = {k: v / 2**20 for k, v in per_agent.items()}
            finally:
                container.home_down(ours, compose_file, home, env)
                container.stack_down(ours, project)
    finally:
        engine.stop()

    # One agent as processes, and as an actor, on the native stack.
    host = start_app(
        unique_name("density"),
        uvicorn_command("lab_env.marketplace.agents.product_host:app"),
        components=["statestore"],
    )
    try:
        measured = density.measure(
            [host.app_pid or 0, host.sidecar_pid], host.sidecar_url, actor_type("ProductActor"), count=args.actors
        )
    finally:
        stop_app(host)
    result["process_pair_mb"] = measured.per_process / 2**20
    result["actor_kib"] = measured.per_actor / 2**10
    result["memory_total_gib"] = psutil.virtual_memory().total / 2**30
    per_agent_mb = result["per_agent_container_mb"]
    assert isinstance(per_agent_mb, dict)
    result["container_products_mb"] = per_agent_mb["products"]
    write(result)
    return 0


def write(r: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "containers.json").write_text(json.dumps(r, indent=2) + "\n")
    total = r["memory_total_gib"] * 2**30
    fits = {
        "containers (agent + sidecar + pod)": total / (r["container_products_mb"] * 2**20),
        "processes (app + sidecar)": total / (r["process_pair_mb"] * 2**20),
        "actors (in one host)": total / (r["actor_kib"] * 2**10),
    }
    ref = r["native_stack_up_s"]
    lines = [
        "# Containers here: the engine, the images, the stack and what an agent costs",
        "",
        f"`python bench/containers_bench.py --runs {r['runs']}` on {r['when']}: lab-env's own dockerd (Debian's "
        "docker.io 20.10), the bakery's local images, Debian's docker-compose 1.29. 2 cores, "
        f"{r['memory_total_gib']:.0f} GiB. The reference is the native stack's `lab-env up` in the same run.",
        "",
        "| what | seconds | vs native `lab-env up` |",
        "| --- | ---: | ---: |",
        f"| native stack `lab-env up` (reference) | {ref:.1f} | 1.00 |",
        f"| engine start, until it answers (median of {r['runs']}) | {r['engine_start_s']:.2f} | "
        f"{r['engine_start_s'] / ref:.2f} |",
        f"| engine stop, nothing left (median of {r['runs']}) | {r['engine_stop_s']:.2f} | "
        f"{r['engine_stop_s'] / ref:.2f} |",
        f"| every image kept (recipes unchanged) | {r['images_kept_s']:.1f} | {r['images_kept_s'] / ref:.2f} |",
        f"| every image rebuilt, no layer cache | {r['images_cold_all_s']:.1f} | {r['images_cold_all_s'] / ref:.2f} |",
        f"| devcontainer services up to healthy (compose) | {r['compose_stack_up_s']:.1f} | "
        f"{r['compose_stack_up_s'] / ref:.2f} |",
        f"| lab 05's home up to healthy (3 agents, images built) | {r['home_up_s']:.1f} | {r['home_up_s'] / ref:.2f} |",
        f"| devcontainer up to green doctor, caches empty (Dev Containers CLI) | {r['devcontainer_cold_s']:.1f} | "
        f"{r['devcontainer_cold_s'] / ref:.2f} |",
        f"| devcontainer up to green doctor, caches kept (a prebuild's case) | {r['devcontainer_warm_s']:.1f} | "
        f"{r['devcontainer_warm_s'] / ref:.2f} |",
        "",
        "The devcontainer rows start from the workspace image already built (docker's layer cache); "
        "\"caches empty\" removes the volumes that keep onCreate's downloads and builds (uv, Go, lab-env's cache).",
        "",
        "Each image rebuilt alone (the Debian base is a fresh mmdebstrap; the others build on it; k8s-tools "
        "rebuilds its image, while the Go builds of kubectl, kind and helm stay cached on the host):",
        "",
        "| image | seconds | size MB |",
        "| --- | ---: | ---: |",
        *(f"| {n} | {s:.1f} | {r['image_mb'][n]:.0f} |" for n, s in r["image_cold_s"].items()),
        "",
        "What one agent costs, idle: resident memory (RSS) of its processes, the same measure each way "
        "(containers: of the processes in them; processes and actors: lab_env.marketplace.homes.density, "
        f"with {r['actors']:,} activated ProductActors). RSS counts shared pages, such as the Python "
        "interpreter's, once per process, so it is an upper bound for many agents of one image:",
        "",
        "| one agent as | memory | fit in this machine's memory |",
        "| --- | ---: | ---: |",
        f"| containers: products agent + daprd + pod | {r['container_products_mb']:.0f} MiB | "
        f"{fits['containers (agent + sidecar + pod)']:,.0f} |",
        f"| processes: app + daprd | {r['process_pair_mb']:.0f} MiB | {fits['processes (app + sidecar)']:,.0f} |",
        f"| an actor in one host | {r['actor_kib']:.1f} KiB | {fits['actors (in one host)']:,.0f} |",
        "",
        "Each container of the home (`docker stats` reports the cgroup's usage, without file-backed pages):",
        "",
        "| container | RSS MiB | docker stats MiB |",
        "| --- | ---: | ---: |",
        *(f"| {n} | {r['container_rss_mb'][n]:.1f} | {mb:.1f} |" for n, mb in r["container_mb"].items()),
        "",
        "![agents that fit](containers.png)",
        "",
    ]
    (RESULTS / "containers.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(list(fits), list(fits.values()), color=["#c0504d", "#f79646", "#4f81bd"])
    ax.set_xscale("log")
    ax.set_xlabel(f"agents that fit in {r['memory_total_gib']:.0f} GiB (log scale)")
    for y, value in enumerate(fits.values()):
        ax.text(value, y, f" {value:,.0f}", va="center")
    fig.tight_layout()
    fig.savefig(RESULTS / "containers.png", dpi=120)
    print((RESULTS / "containers.md").read_text())


if __name__ == "__main__":
    raise SystemExit(main())
