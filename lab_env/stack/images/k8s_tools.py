"""kubectl, kind and helm at the versions versions.toml [tools] pins, built here from Go modules.

Upstream, the devcontainer's workspace downloads the three release binaries
(devcontainer/k8s-tools.sh); nothing here can reach those downloads, so the
bakery's ``k8s-tools`` image carries binaries built on this machine instead:

    kind     `go install sigs.k8s.io/kind@v<kind>` (its own module graph)
    helm     `go install helm.sh/helm/v3/cmd/helm@v<helm>`, its version stamped
    kubectl  kubectl_build/: the published k8s.io/kubectl module at the pinned
             minor's v0.x.y, with a main of our own (the release's main lives in
             k8s.io/kubernetes, which cannot be a dependency), its version stamped

The binaries live in the cache next to a stamp of the pins they were built at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from lab_env.core.paths import cache_dir, logs_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack.provision.prereqs import require_go

KUBECTL_MODULE = Path(__file__).parent / "kubectl_build"
TOOLS = ("kubectl", "kind", "helm")
FIX = "check network access to the Go module proxy, then run `lab-env images build k8s-tools` again"


def bin_dir() -> Path:
    t = pins().tools
    return cache_dir() / f"k8s-tools-{t['kind']}-{t['kubectl']}-{t['helm']}" / "bin"


def kubectl_module_version(go_mod: str | None = None) -> str | None:
    """The k8s.io/kubectl version kubectl_build/go.mod requires (v0.34.1 for kubectl 1.34.1)."""
    text = go_mod if go_mod is not None else (KUBECTL_MODULE / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubectl (v\S+)", text, re.MULTILINE)
    return match[1] if match else None


def drift() -> list[str]:
    kubectl = pins().tools["kubectl"]
    found = kubectl_module_version()
    want = "v0." + kubectl.split(".", 1)[1]
    return [] if found == want else [f"kubectl_build/go.mod requires k8s.io/kubectl {found}, the pin needs {want}"]


def build() -> dict[str, Path]:
    """The three binaries, built unless the cache holds them at the pinned versions."""
    out = bin_dir()
    stamp = out / "versions.json"
    want = dict(pins().tools)
    try:
        if json.loads(stamp.read_text()) == want and all((out / name).exists() for name in TOOLS):
            return {name: out / name for name in TOOLS}
    except (OSError, ValueError):
        pass
    if problems := drift():
        raise LabEnvError(problems[0], "edit kubectl_build/go.mod to the pin and run `go mod tidy` there")
    go = require_go()
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    env = {"GOBIN": str(out), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": ""}
    helm_version = f"-X helm.sh/helm/v3/internal/version.version=v{want['helm']}"
    kube_version = " ".join(
        f"-X {pkg}.gitVersion=v{want['kubectl']}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    )
    steps = [
        ("kind", [go, "install", "-v", "-trimpath", f"sigs.k8s.io/kind@v{want['kind']}"], None),
        (
            "helm",
            [go, "install", "-v", "-trimpath", "-ldflags", helm_version, f"helm.sh/helm/v3/cmd/helm@v{want['helm']}"],
            None,
        ),
        (
            "kubectl",
            [go, "build", "-v", "-trimpath", "-mod=mod", "-ldflags", kube_version, "-o", str(out / "kubectl"), "."],
            _module_copy(),
        ),
    ]
    for name, argv, cwd in steps:
        run_with_progress(
            argv,
            f"building {name} (Go)",
            logs_dir() / f"k8s-tools-{name}.log",
            counts=lambda line: not line.startswith(("go:", "#")),
            env={**os.environ, **env},
            cwd=cwd,
            fix=FIX,
        )
    stamp.write_text(json.dumps(want))
    return {name: out / name for name in TOOLS}


def _module_copy() -> Path:
    """kubectl_build/ copied into the cache: `go build -mod=mod` may touch go.sum, never the repo's."""
    work = cache_dir() / "kubectl-build"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(KUBECTL_MODULE, work)
    return work
