"""The binaries of a kind cluster built here, where kind's node image cannot be pulled.

    kind                       `go install sigs.k8s.io/kind@v<kind_node.kind>`
    kubelet kubeadm kube-proxy k8s.io/kubernetes at [kubernetes] version, from the same
                               build module as the native control plane (kube_build/),
                               so they share its compiled packages
    containerd ctr shim        `go install github.com/containerd/containerd/v2/cmd/...`
    coredns                    `go install github.com/coredns/coredns@v<kind_node.coredns>`
    pause                      gcc -static on the pause.c the k8s.io/kubernetes module ships

kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd are
the native cluster's (provision/kube.py), and so is metrics-server. Everything lands in one folder of
the cache next to a stamp of the pins it was built at; a later call with the
same pins returns at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from lab_env.core.paths import cache_dir, logs_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack.provision import kube
from lab_env.stack.provision.gobuild import download_module, go_build, go_env
from lab_env.stack.provision.prereqs import require_go

NODE_KUBE = ("kubelet", "kubeadm", "kube-proxy")
CONTAINERD = ("containerd", "ctr", "containerd-shim-runc-v2")
# containerd's optional snapshotters that need C libraries; kind's own build leaves them out too.
CONTAINERD_TAGS = "no_aufs no_zfs no_btrfs no_devmapper"
FROM_NATIVE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "metrics-server")
ALL = (*NODE_KUBE, *CONTAINERD, "kind", "coredns", "pause", *FROM_NATIVE)
FIX = "check network access to the Go module proxy, then run `lab-env images build kind-node` again"


def _stamp() -> dict[str, str]:
    return {**pins().kind_node, "kubernetes": pins().kubernetes["version"], "etcd": pins().kubernetes["etcd"]}


def bin_dir() -> Path:
    p = pins()
    return cache_dir() / f"kind-node-{p.kubernetes['version']}-kind{p.kind_node['kind']}" / "bin"


def built() -> bool:
    try:
        return json.loads((bin_dir() / "versions.json").read_text()) == _stamp() and all(
            (bin_dir() / name).exists() for name in ALL
        )
    except (OSError, ValueError):
        return False


def build() -> Path:
    """The folder holding every binary above, built unless the cache has them at the pinned versions."""
    if built():
        return bin_dir()
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "versions.json").unlink(missing_ok=True)
    native = kube.install_kube()
    go = require_go()
    v = pins()
    k8s = v.kubernetes["version"]
    _node_kube(go, out, k8s)
    node = v.kind_node
    installs = [
        ("kind", [f"sigs.k8s.io/kind@v{node['kind']}"], {}),
        (
            "containerd",
            [f"github.com/containerd/containerd/v2/cmd/{name}@v{node['containerd']}" for name in CONTAINERD],
            {"GOFLAGS": f"-tags={CONTAINERD_TAGS.replace(' ', ',')}"},
        ),
        ("coredns", [f"github.com/coredns/coredns@v{node['coredns']}"], {}),
    ]
    for what, targets, extra in installs:
        run_with_progress(
            [go, "install", "-v", "-trimpath", "-ldflags", "-s -w", *targets],
            f"building {what} (Go)",
            logs_dir() / f"kind-node-{what}.log",
            counts=lambda line: not line.startswith(("go:", "#")),
            env={**os.environ, **go_env(), "GOFLAGS": "", "GOBIN": str(out), **extra},
            fix=FIX,
        )
    _pause(go, out, k8s)
    for name in FROM_NATIVE:
        shutil.copy2(native / name, out / name)
    (out / "versions.json").write_text(json.dumps(_stamp()))
    return out


def _node_kube(go: str, out: Path, k8s: str) -> None:
    """kubelet, kubeadm and kube-proxy, with the version stamps kubeadm checks against the control plane."""
    work = cache_dir() / "kube-build"
    if not (work / "go.mod").exists():
        shutil.copytree(kube.BUILD_MODULE, work, dirs_exist_ok=True)
    go_build(
        go,
        work,
        [f"k8s.io/kubernetes/cmd/{name}" for name in NODE_KUBE],
        f"{out}/",
        kube.kube_ldflags(k8s),
        f"kubelet, kubeadm, kube-proxy {k8s}",
        "kind-node-kube.log",
    )


def _pause(go: str, out: Path, k8s: str) -> None:
    """The sandbox container's process, from the C source the Kubernetes module carries."""
    source = download_module(go, "k8s.io/kubernetes", f"v{k8s}", kube.BUILD_MODULE) / "build" / "pause" / "linux"
    version = pins().kind_node["pause"]
    gcc = shutil.which("gcc")
    if gcc is None:
        raise LabEnvError("gcc is not installed (it builds the pause container)", "apt-get install gcc libc6-dev")
    done = subprocess.run(
        [gcc, "-Os", "-Wall", "-static", f"-DVERSION=v{version}", "-o", str(out / "pause"), str(source / "pause.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabEnvError(f"building pause failed: {done.stderr.strip()[-200:]}", "install libc6-dev (static libc)")


DAPR_K8S = ("operator", "injector")


def dapr_k8s() -> Path:
    """Dapr's operator and sidecar injector, built in the Dapr build's folder; returns that bin folder.

    The other control-plane services and daprd are the binaries `lab-env setup` built.
    """
    from lab_env.stack.provision import dapr

    version = pins().dapr_runtime
    work = cache_dir() / f"dapr-build-{version}"
    out = work / "bin"
    if all((out / name).exists() for name in DAPR_K8S):
        return out
    if not (work / "dapr-src").exists():
        dapr.build(require_go(), version)
    for name in DAPR_K8S:
        shutil.copytree(dapr.BUILD_MODULE / name, work / name, dirs_exist_ok=True)
    go_build(
        require_go(),
        work,
        [f"./{name}" for name in DAPR_K8S],
        f"{out}/",
        f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={version}"
        f" -X github.com/dapr/kit/logger.DaprVersion={version}",
        f"Dapr {version} operator and injector",
        "dapr-k8s-build.log",
    )
    return out
