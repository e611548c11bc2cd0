"""Benchmark of lab 05's native Kubernetes cluster; prints a table and writes JSON + Markdown.

    .venv/bin/python bench/cluster_bench.py [--cold] [--runs 3]

Measures, on this machine:
- with --cold (its own run, added to the last table): the control plane's build (lab_env.stack.provision.kube) with an
  empty Go build cache and an empty lab-env cache, Go modules downloaded
  again into an empty module cache: what a first `lab-env cluster up` costs;
- `lab-env cluster up` with the binaries built (median of N): to a running
  control plane with Ready nodes and Dapr's CRDs established;
- the rendered marketplace home applied until every pod is Running, and
  `down` until every process has exited;
- the RSS of each control-plane process at idle;
- reference, in the same run: the lab stack's own warm start (`lab-env up`
  of Redis, Kafka, placement and scheduler), for the ratio.

Uses its own cluster name, so a learner's cluster is left alone; it stops
and restarts the lab stack for the reference row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env.core.probes import wait_until  # noqa: E402
from lab_env.marketplace.homes import kube  # noqa: E402
from lab_env.marketplace.homes.spec import load  # noqa: E402
from lab_env.runtime.clusters import native as native_cluster  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NAME = f"bench-{os.getpid()}"


def cold_build() -> float:
    """Build every control-plane binary from nothing; seconds."""
    from lab_env.stack.provision.kube import install_kube

    with tempfile.TemporaryDirectory(prefix="kube-cold-") as tmp:
        saved = {k: os.environ.get(k) for k in ("GOCACHE", "GOMODCACHE", "LAB_ENV_CACHE")}
        os.environ.update(GOCACHE=f"{tmp}/gocache", GOMODCACHE=f"{tmp}/gomod", LAB_ENV_CACHE=f"{tmp}/lab-env")
        try:
            start = time.perf_counter()
            install_kube(force=True)
            return time.perf_counter() - start
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            # The module cache is read-only by design: make it removable.
            os.system(f"chmod -R u+w {tmp} 2>/dev/null")


def warm_up_and_down(runs: int) -> dict[str, object]:
    spec = load(ROOT / "lab_env" / "marketplace" / "homes" / "marketplace.yaml")
    ups, rollouts, downs, rss = [], [], [], {}
    for run in range(runs):
        start = time.perf_counter()
        cluster = native_cluster.up(NAME)
        ups.append(time.perf_counter() - start)
        try:
            start = time.perf_counter()
            cluster.apply(kube.manifests(spec, secret_values={name: "bench" for name in spec.secrets}))
            want = sum(a.replicas for a in spec.agents)
            wait_until(
                lambda cluster=cluster, want=want: (
                    sum(
                        p["status"].get("phase") == "Running" for p in cluster.get("pods", namespace=spec.home)["items"]
                    )
                    >= want
                ),
                300,
                f"{want} pods Running",
            )
            rollouts.append(time.perf_counter() - start)
            if run == 0:
                time.sleep(10)  # idle
                rss = {name: psutil.Process(pid).memory_info().rss / 2**20 for name, pid in cluster.pids().items()}
        finally:
            start = time.perf_counter()
            native_cluster.down(NAME)
            downs.append(time.perf_counter() - start)
    return {"up_s": ups, "rollout_s": rollouts, "down_s": downs, "rss_mib": rss, "pods": want}


def stack_reference() -> float:
    from lab_env.stack import down, up

    down()
    start = time.perf_counter()
    up(progress=False)
    return time.perf_counter() - start


def render(data: dict) -> str:
    w = data["warm"]
    med = {key: statistics.median(w[key]) for key in ("up_s", "rollout_s", "down_s")}
    ref = data["stack_up_s"]
    lines = [
        "# Native Kubernetes cluster (lab 05)",
        "",
        f"Measured {data['when']} on {data['machine']}; {data['note']}",
        "",
        "| step | seconds | vs `lab-env up` of the stack |",
        "| --- | ---: | ---: |",
    ]
    if data.get("cold_build_s"):
        lines.append(
            f"| cold build of the 8 binaries, empty Go caches ({data['cold_note']}) | "
            f"{data['cold_build_s']:.0f} | {data['cold_build_s'] / ref:.0f}x |"
        )
    lines += [
        f"| `cluster up`, binaries built (median of {len(w['up_s'])}) | {med['up_s']:.1f} | {med['up_s'] / ref:.1f}x |",
        f"| marketplace home applied, {w['pods']} pods Running | {med['rollout_s']:.1f} | "
        f"{med['rollout_s'] / ref:.1f}x |",
        f"| `cluster down`, every process exited | {med['down_s']:.1f} | {med['down_s'] / ref:.1f}x |",
        f"| reference: `lab-env up` (Redis, Kafka, placement, scheduler) | {ref:.1f} | 1.0x |",
        "",
        "| process at idle | RSS MiB |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {mib:.0f} |" for name, mib in sorted(w["rss_mib"].items())]
    lines.append(f"| total | {sum(w['rss_mib'].values()):.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cold",
        action="store_true",
        help="time only a build from empty caches (about 10 minutes) and add it to the table",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--note", default="no other load", help="what else ran on the machine")
    parser.add_argument("--render", action="store_true", help="rewrite the Markdown from the JSON")
    args = parser.parse_args()
    path = RESULTS / "cluster.json"
    if args.render:
        data = json.loads(path.read_text())
    elif args.cold:  # its own row, merged into the last warm run's table
        data = json.loads(path.read_text()) if path.exists() else {}
        data["cold_build_s"] = cold_build()
        data["cold_note"] = f"{time.strftime('%Y-%m-%d')}, {args.note}"
    else:
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(
            {
                "when": time.strftime("%Y-%m-%d"),
                "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
                "note": args.note,
            }
        )
        native_cluster.up(NAME)  # builds the binaries first if missing (not timed)
        native_cluster.down(NAME)
        data["warm"] = warm_up_and_down(args.runs)
        data["stack_up_s"] = stack_reference()
    if not args.render:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
    table = render(data)
    (RESULTS / "cluster.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
