"""A Kubernetes control plane built from Go modules, for lab 05's native cluster.

kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from
k8s.io/kubernetes, plus etcd, kwok (simulated nodes and pods), kwokctl
(starts them all as local processes) and metrics-server (the HPA's metrics),
built from one module (kube_build/) so they share compiled k8s.io packages.

Built on first use (`lab-env cluster up`, or `lab-env setup --cluster`),
never in the first-start path: a cold build takes about 10 minutes here.
The binaries live in the cache, next to a stamp of the versions they were
built at; a later call with the same pins returns at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from lab_env.core.paths import cache_dir
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack.provision.gobuild import download_module, go_build
from lab_env.stack.provision.prereqs import require_go

BUILD_MODULE = Path(__file__).parent / "kube_build"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
COMMANDS = (*KUBE_COMMANDS, "etcd", "kwok", "kwokctl", "metrics-server")


def kube_bin_dir() -> Path:
    return cache_dir() / f"kube-{pins().kubernetes['version']}" / "bin"


def kube_bin(name: str) -> Path:
    return kube_bin_dir() / name


def _stamp() -> dict[str, str]:
    return dict(pins().kubernetes)


def kube_installed() -> bool:
    stamp = kube_bin_dir() / "versions.json"
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return built == _stamp() and all(kube_bin(name).exists() for name in COMMANDS)


def install_kube(force: bool = False) -> Path:
    """The folder holding the control plane's binaries, built if missing."""
    if kube_installed() and not force:
        for name in MANIFESTS:
            manifests(name)
        return kube_bin_dir()
    go = require_go()
    work = cache_dir() / "kube-build"
    out = kube_bin_dir()
    # The build folder is reused: Go's own caches make a rebuild cheap, and a
    # half-written binary never reaches bin/ (the stamp is written last).
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(BUILD_MODULE, work)
    _check_module_versions(work)
    out.mkdir(parents=True, exist_ok=True)
    (out / "versions.json").unlink(missing_ok=True)
    staging = work / "bin"
    v = pins().kubernetes
    k8s = v["version"]
    # kwokctl reads each binary's --version to choose its flags: the version must be real.
    go_build(
        go,
        work,
        [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS],
        f"{staging}/",
        kube_ldflags(k8s),
        f"Kubernetes {k8s}",
        "kube-build.log",
    )
    go_build(go, work, ["go.etcd.io/etcd/server/v3"], f"{staging}/etcd", "-s -w", f"etcd {v['etcd']}", "etcd-build.log")
    go_build(
        go,
        work,
        ["sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"],
        f"{staging}/",
        "-s -w",
        f"kwok {v['kwok']}",
        "kwok-build.log",
    )
    go_build(
        go,
        work,
        ["sigs.k8s.io/metrics-server/cmd/metrics-server"],
        f"{staging}/",
        f"-s -w -X k8s.io/client-go/pkg/version.gitVersion=v{v['metrics_server']}",
        f"metrics-server {v['metrics_server']}",
        "metrics-server-build.log",
    )
    for name in COMMANDS:
        tmp = out / f".{name}.new"
        shutil.copy2(staging / name, tmp)
        tmp.replace(out / name)
    (out / "versions.json").write_text(json.dumps(_stamp()))
    for name in MANIFESTS:
        manifests(name)
    return out


def kube_ldflags(k8s: str) -> str:
    """-ldflags for a Kubernetes binary: stripped, stamped with its real version (kwokctl and
    kubeadm read each binary's version)."""
    major, minor = k8s.split(".")[:2]
    stamps = " ".join(
        f"-X {pkg}.gitVersion=v{k8s} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    )
    return f"-s -w {stamps} -X k8s.io/component-base/version.gitTreeState=clean"


def module_dir(module: str, version: str) -> Path:
    """Where the Go module cache holds ``module@version`` (downloaded if needed).

    The Dapr CRDs and metrics-server's manifests ship inside their modules.
    """
    go = require_go()
    return download_module(go, module, version, BUILD_MODULE)


# The manifests a cluster applies, by name: (Go module, its pinned version, the folder inside it).
MANIFESTS = {
    "metrics-server": (
        "sigs.k8s.io/metrics-server",
        lambda: pins().kubernetes["metrics_server"],
        "manifests/base",
    ),
    "dapr-crds": ("github.com/dapr/dapr", lambda: pins().dapr_runtime, "charts/dapr/crds"),
}


def manifests(name: str) -> Path:
    """The folder of manifests ``name`` (a MANIFESTS key) at its pinned version.

    Copied out of its Go module into the cache once (install_kube does it), so
    starting a cluster later needs no Go toolchain and no module download.
    """
    module, version_of, inside = MANIFESTS[name]
    version = version_of()
    kept = cache_dir() / "manifests" / f"{name}-{version}"
    if kept.is_dir():
        return kept
    source = module_dir(module, f"v{version}") / inside
    kept.parent.mkdir(parents=True, exist_ok=True)
    # A staging folder of this call's own: graders side by side may copy at the same time.
    staging = Path(tempfile.mkdtemp(prefix=f".{kept.name}.", dir=kept.parent)) / "copy"
    try:
        # copyfile, not copy2: the module cache is read-only and its modes would follow.
        shutil.copytree(source, staging, copy_function=shutil.copyfile)
        for folder in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
            folder.chmod(0o755)
        try:
            staging.rename(kept)
        except OSError:
            if not kept.is_dir():  # another copy landing first is fine
                raise
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    return kept


def _check_module_versions(work: Path) -> None:
    gomod = (work / "go.mod").read_text()
    v = pins().kubernetes
    wanted = {
        "k8s.io/kubernetes": v["version"],
        "go.etcd.io/etcd/server/v3": v["etcd"],
        "sigs.k8s.io/kwok": v["kwok"],
        "sigs.k8s.io/metrics-server": v["metrics_server"],
    }
    for module, version in wanted.items():
        if f"\t{module} v{version}\n" not in gomod:
            raise LabEnvError(
                f"lab_env/stack/provision/kube_build/go.mod does not require {module} v{version} (versions.toml)",
                "update go.mod to the pinned versions",
            )
