"""What a kind cluster built here costs, next to the native cluster (the reference) in the same run.

    LAB_ENV_IMAGES=local .venv/bin/python bench/kubernetes_bench.py [--workers 2]

In one run on this machine, on lab-env's own Docker engine:
- the node image: kept (inputs unchanged), then rebuilt with its Go binaries cached
  (component images, the node, the preload into its containerd, the commit);
- `kind create cluster` with 1 control plane and --workers workers, until every node is Ready;
- Dapr installed by its own Helm chart until `helm --wait` says healthy (images built, then
  loaded into the nodes);
- the HPA on real CPU (lab_env/runtime/clusters/hpa_demo.py): from starting a load to 2 and to 4
  ready pods, and from stopping it back to 1;
- lab 05's home on running pods (lab_env/runtime/clusters/kind_home.py): from building and loading
  its images to every agent Ready, then deleting every products pod until its actor answers with its
  state, a rolling update of products, and removing the home's namespace;
- the memory of each node container (docker stats) with Dapr's control plane and the home running;
- deleting the cluster;
- the native cluster (real control plane, kwok's simulated nodes): up and down, the reference.

It starts and deletes clusters and uses the engine: run it alone, never beside the suite.
Writes bench/results/kubernetes.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env.core.paths import REPO_ROOT  # noqa: E402
from lab_env.marketplace.homes.spec import load  # noqa: E402
from lab_env.runtime import sidecar  # noqa: E402
from lab_env.runtime.actors import actor_type  # noqa: E402
from lab_env.runtime.clusters import hpa_demo, kind, kind_home  # noqa: E402
from lab_env.runtime.clusters import native as native_cluster  # noqa: E402
from lab_env.stack import engine as engines  # noqa: E402
from lab_env.stack.images import bakery, kind_node  # noqa: E402

RESULTS = ROOT / "bench" / "results"
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def memory_mib(text: str) -> float:
    number = text.rstrip("KMGiB")
    unit = text[len(number) :]
    return float(number) * UNITS[unit] / 2**20


def all_ready(kubectl: list[str], env: dict[str, str]) -> bool:
    out = subprocess.run([*kubectl, "get", "nodes", "-o", "json"], capture_output=True, text=True, env=env).stdout
    try:
        nodes = json.loads(out)["items"]
    except (ValueError, KeyError):
        return False
    return bool(nodes) and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=kind.DEFAULT_WORKERS)
    args = parser.parse_args()
    os.environ["LAB_ENV_IMAGES"] = "local"
    engine = engines.up()
    env = {**os.environ, "DOCKER_HOST": engine.host}
    r: dict[str, object] = {"workers": args.workers, "cpus": os.cpu_count()}
    kind.local_down()

    debian = bakery.build(engine, ["debian"])[-1].ref
    r["node_image_kept_s"] = timed(lambda: kind_node.build(engine, debian))
    for ref in (kind_node.node_ref(), *kind_node.component_refs().values()):
        engine.docker("rmi", ref)
    r["node_image_rebuilt_s"] = timed(lambda: kind_node.build(engine, debian))
    size = engine.check("image", "inspect", "--format", "{{.Size}}", kind_node.node_ref())
    r["node_image_mb"] = round(int(size) / 1e6)

    kubectl = [str(kind.local_tools()[3]), "--context", f"kind-{kind.cluster_name()}"]
    started = time.perf_counter()
    kind.local_up(workers=args.workers, with_dapr=False)
    while not all_ready(kubectl, env):  # kind's --wait covers the control plane only
        time.sleep(0.5)
    r["cluster_create_to_nodes_ready_s"] = time.perf_counter() - started
    r["dapr_install_to_healthy_s"] = timed(lambda: kind.local_up(workers=args.workers, with_dapr=True))
    kind_bin = str(kind.local_tools()[2])
    subprocess.run(
        [kind_bin, "load", "docker-image", "--name", kind.cluster_name(), hpa_demo.AGENT_IMAGE],
        env=env, check=True, capture_output=True,
    )  # fmt: skip

    def run_kubectl(*a: str, stdin: str | None = None) -> str:
        done = subprocess.run([*kubectl, *a], input=stdin, capture_output=True, text=True, env=env, check=True)
        return done.stdout

    hpa_demo.apply_app(run_kubectl)
    hpa_demo.start_load(run_kubectl)
    r["hpa_first_scale_up_s"] = hpa_demo.until_replicas(run_kubectl, lambda n: n >= 2, "scale up")
    r["hpa_to_max_s"] = r["hpa_first_scale_up_s"] + hpa_demo.until_replicas(run_kubectl, lambda n: n >= 4, "max")
    hpa_demo.stop_load(run_kubectl)
    r["hpa_back_to_one_s"] = hpa_demo.until_replicas(run_kubectl, lambda n: n == 1, "scale down")
    spec = load(REPO_ROOT / "lab_env" / "marketplace" / "homes" / "marketplace.yaml")
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "kubernetes-bench-home"
    started = time.perf_counter()
    home = kind_home.deploy(
        spec, kind.local_kubectl(), kind.local_load, engine, folder, {"openai-api-key": "Bearer placeholder"}
    )
    r["home_deploy_to_ready_s"] = time.perf_counter() - started
    stock = sidecar.actor_method_path(actor_type("ProductActor"), "sku-1", "Stock")
    r["home_first_actor_answer_s"] = timed(lambda: home.wait_answers("products", stock))
    home.call("products", sidecar.actor_method_path(actor_type("ProductActor"), "sku-1", "Restock"), 7)
    r["home_pods_deleted_to_state_back_s"] = timed(
        lambda: (home.restart_pods("products"), home.wait_answers("products", stock, "7"))
    )
    r["home_rolling_update_s"] = timed(lambda: home.rolling_update("products"))
    stats = engine.check(
        "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}",
        *engine.check("ps", "-q", "--filter", f"label=io.x-k8s.kind.cluster={kind.cluster_name()}").split(),
    )  # fmt: skip
    r["node_memory_mib"] = {
        line.split()[0]: round(memory_mib(line.split()[1]), 1) for line in stats.splitlines() if line.strip()
    }
    r["home_remove_s"] = timed(home.remove)
    r["cluster_delete_s"] = timed(kind.local_down)

    r["native_up_s"] = timed(native_cluster.up)
    r["native_down_s"] = timed(native_cluster.down)
    write(r)
    return 0


def write(r: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kubernetes.json").write_text(json.dumps(r, indent=2) + "\n")
    native = r["native_up_s"]
    rows = [
        ("node image, inputs unchanged (kept)", r["node_image_kept_s"]),
        ("node image rebuilt, Go binaries cached", r["node_image_rebuilt_s"]),
        (f"kind cluster create, 1 + {r['workers']} nodes, to all Ready", r["cluster_create_to_nodes_ready_s"]),
        ("Dapr by its Helm chart, images loaded, to healthy", r["dapr_install_to_healthy_s"]),
        ("HPA: load started to 2 pods ready (real CPU, metrics-server)", r["hpa_first_scale_up_s"]),
        ("HPA: load started to 4 pods ready (its maximum)", r["hpa_to_max_s"]),
        ("HPA: load stopped to 1 pod (scale-down window 0)", r["hpa_back_to_one_s"]),
        ("lab 05 home: image built and loaded, Redis, Kafka, 3 agents, to all Ready", r["home_deploy_to_ready_s"]),
        ("lab 05 home: first actor call answered (placement has the type)", r["home_first_actor_answer_s"]),
        ("lab 05 home: every products pod deleted to its actor's state back", r["home_pods_deleted_to_state_back_s"]),
        ("lab 05 home: rolling update of products", r["home_rolling_update_s"]),
        ("lab 05 home: namespace removed", r["home_remove_s"]),
        ("kind cluster delete", r["cluster_delete_s"]),
        ("native cluster up (reference)", native),
        ("native cluster down", r["native_down_s"]),
    ]
    memory = r["node_memory_mib"]
    lines = [
        "# Kubernetes here: a kind cluster on images built locally, next to the native cluster",
        "",
        f"Made by `bench/kubernetes_bench.py` on this machine ({r['cpus']} cores), one run, "
        "lab-env's own Docker engine, nothing pulled. The native cluster (real control plane "
        "as processes, kwok's simulated nodes) is the reference.",
        "",
        "| step | seconds | × native up |",
        "| --- | ---: | ---: |",
        *(f"| {what} | {seconds:.1f} | {seconds / native:.1f} |" for what, seconds in rows),
        "",
        f"Node image: {r['node_image_mb']} MB (the control-plane images preloaded in its containerd).",
        "",
        "| node container (Dapr's control plane, metrics-server, the HPA app at 1 pod, lab 05's home) | memory MiB |",
        "| --- | ---: |",
        *(f"| {name} | {mib:.0f} |" for name, mib in sorted(memory.items())),
        f"| all nodes | {sum(memory.values()):.0f} |",
        "",
    ]
    (RESULTS / "kubernetes.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
