"""`lab-env cluster up | status | down`: lab 05's Kubernetes cluster, kind or native (runtime/clusters)."""

from __future__ import annotations

import argparse

from lab_env.core.versions import pins
from lab_env.runtime.clusters import kind


def cmd_cluster(args: argparse.Namespace) -> int:
    runtime, why = kind.runtime_choice(args.runtime)
    if args.runtime == "auto":
        print(f"runtime: {runtime} ({why})")
    if runtime == "native":
        from lab_env.runtime.clusters import native as native_cluster

        if args.action == "up":
            cluster = native_cluster.up()
            print(
                f"native Kubernetes {pins().kubernetes['version']} cluster {cluster.name} is up "
                f"(kwok simulates its {native_cluster.NODES} nodes: pods are scheduled and marked Running, "
                f"their containers do not run)"
            )
            print(f"kubectl: export KUBECONFIG={cluster.kubeconfig}")
        elif args.action == "status":
            for line in native_cluster.status():
                print(line)
        else:
            name = native_cluster.DEFAULT_NAME
            print(f"deleted native cluster {name}" if native_cluster.down() else f"no native cluster named {name}")
        return 0
    if kind.local_images():
        # Nothing pulls here: kind, its node image and every image the node starts are built locally.
        if args.action == "up":
            for line in kind.local_up(workers=args.workers):
                print(line)
        elif args.action == "down":
            name = kind.cluster_name()
            print(f"deleted kind cluster {name}" if kind.local_down() else f"no kind cluster named {name}")
        else:
            print(f"kind cluster {kind.cluster_name()} {'exists' if kind.local_exists() else 'does not exist'}")
        return 0
    if args.action == "up":
        for line in kind.up(namespace=args.namespace, timeout=args.timeout):
            print(line)
    elif args.action == "status":
        print(f"kind cluster {kind.cluster_name()} {'exists' if kind.exists() else 'does not exist'}")
    else:
        name = kind.cluster_name()
        print(f"deleted kind cluster {name}" if kind.down() else f"no kind cluster named {name}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `cluster up | down` to lab-env's subcommands; returns the new parser."""
    parser = sub.add_parser(
        "cluster",
        help="Kubernetes cluster for the agent-homes lab (up | status | down)",
        description="With Docker (the devcontainer): up creates the kind cluster of devcontainer/kind-config.yaml, "
        "installs Dapr with Helm at the pinned version and exposes the compose stack's Redis and Kafka "
        "to its pods. Without Docker: up starts a real Kubernetes control plane as local processes "
        "(built from Go modules on first use, about 10 minutes) with kwok simulating the nodes, and "
        "installs Dapr's CRDs. down deletes the cluster.",
    )
    parser.add_argument("action", choices=("up", "status", "down"))
    parser.add_argument(
        "--runtime",
        choices=("auto", "kind", "native"),
        default="auto",
        help="kind (needs Docker, or LAB_ENV_IMAGES=local to build it on lab-env's own engine) or native (local "
        "processes); auto picks kind when a Docker engine answers, and says which it picked",
    )
    parser.add_argument(
        "--namespace",
        default="default",
        help="up: the namespace whose pods get the redis and kafka Services (default: default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=kind.DEFAULT_WORKERS,
        help="up, kind on local images: worker nodes next to the control plane (default: %(default)s)",
    )
    parser.add_argument("--timeout", default="10m", help="up: how long Helm waits for Dapr to be ready (default: 10m)")
    parser.set_defaults(fn=cmd_cluster)
    return parser
