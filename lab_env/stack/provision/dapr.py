"""The Dapr runtime (daprd, placement, scheduler) built from Go modules.

Installs into the layout `dapr init --slim` makes (~/.dapr/bin, config.yaml,
components/), so the stock `dapr run` works against it, plus sentry (lab 05's
certificate authority for mTLS). Binaries are rebuilt when the pinned version
or the build recipe (dapr_build/, the patches below) changes: a stamp beside
them records which recipe made them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from lab_env.core.paths import cache_dir, dapr_bin, dapr_home
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack.provision.gobuild import download_module, go_build, go_env
from lab_env.stack.provision.prereqs import require_go

BUILD_MODULE = Path(__file__).parent / "dapr_build"
COMMANDS = ("daprd", "placement", "scheduler", "sentry")
# dapr's stock component list panics unless built with a tag that links every
# component; this file of ours takes its place (see dapr_build/daprd/main.go).
_NO_TAG_FILE = Path("cmd/daprd/components/zz_notag.go")
# The healthz server of placement, scheduler and sentry listens on every
# interface whatever --healthz-listen-address says; we make it listen where
# DAPR_HEALTHZ_LISTEN_ADDRESS says (see overlay/healthz_listen.go).
_HEALTHZ_FILE = Path("pkg/healthz/server/server.go")
_HEALTHZ_LISTEN = (
    'net.Listen("tcp", fmt.Sprintf(":%d", s.port))',
    'net.Listen("tcp", fmt.Sprintf("%s:%d", healthzListenHost, s.port))',
)
STAMP = ".lab-env-recipe"


def recipe() -> str:
    """A hash of everything that decides what the build produces."""
    digest = hashlib.sha256(pins().dapr_runtime.encode())
    for path in sorted(p for p in BUILD_MODULE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(BUILD_MODULE)).encode() + path.read_bytes())
    digest.update(repr((_NO_TAG_FILE, _HEALTHZ_FILE, _HEALTHZ_LISTEN)).encode())
    return digest.hexdigest()[:16]


def installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\d+\.\d+\.\d+\S*", out.stdout)
    return match[0] if match else None


def from_image() -> bool:
    """In the container profile, the workspace image put the pinned Dapr image's binaries in place
    (devcontainer/Dockerfile): they are the runtime there, and no build is needed."""
    from lab_env.core.profile import current

    return (
        current().name == "container"
        and installed_version(dapr_bin("daprd")) == pins().dapr_runtime
        and all(dapr_bin(name).exists() for name in COMMANDS)
    )


def installed() -> bool:
    if from_image():
        return True
    stamp = dapr_home() / "bin" / STAMP
    return (
        stamp.exists()
        and stamp.read_text().strip() == recipe()
        and installed_version(dapr_bin("daprd")) == pins().dapr_runtime
        and all(dapr_bin(name).exists() for name in COMMANDS)
    )


def install_dapr(force: bool = False) -> Path:
    if installed() and not force:
        _write_slim_layout()
        return dapr_home() / "bin"
    go = require_go()
    version = pins().dapr_runtime
    out_dir = build(go, version)
    bin_dir = dapr_home() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        # Copy then rename, so a running daprd keeps its (old) file intact.
        tmp = bin_dir / f".{name}.new"
        shutil.copy2(out_dir / name, tmp)
        tmp.replace(bin_dir / name)
    (bin_dir / STAMP).write_text(recipe() + "\n")
    _write_slim_layout()
    return bin_dir


def build(go: str, version: str) -> Path:
    """Build COMMANDS in the cache; returns the folder holding them."""
    work = cache_dir() / f"dapr-build-{version}"
    out_dir = work / "bin"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(BUILD_MODULE, work)
    env = {**os.environ, **go_env()}
    _check_module_version(work, version)

    # A writable copy of dapr's source with the panicking file swapped out,
    # wired in with a local replace directive.
    src = download_module(go, "github.com/dapr/dapr", f"v{version}", work)
    local = work / "dapr-src"
    shutil.copytree(src, local)
    for path in [local, *local.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    shutil.copyfile(work / "overlay" / "components_empty.go", local / _NO_TAG_FILE)
    healthz = local / _HEALTHZ_FILE
    source = healthz.read_text()
    if _HEALTHZ_LISTEN[0] not in source:
        raise LabEnvError(
            f"dapr v{version}'s {_HEALTHZ_FILE} no longer has the listen call lab-env patches",
            "update _HEALTHZ_LISTEN in lab_env/stack/provision/dapr.py for this Dapr version",
        )
    healthz.write_text(source.replace(*_HEALTHZ_LISTEN))
    shutil.copyfile(work / "overlay" / "healthz_listen.go", healthz.parent / "zz_listen_host.go")
    subprocess.run([go, "mod", "edit", "-replace", "github.com/dapr/dapr=./dapr-src"], cwd=work, env=env, check=True)

    ldflags = (
        f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={version}"
        f" -X github.com/dapr/kit/logger.DaprVersion={version}"
    )
    go_build(
        go, work, [f"./{name}" for name in COMMANDS], str(out_dir) + "/", ldflags, f"Dapr {version}", "dapr-build.log"
    )
    return out_dir


def _check_module_version(work: Path, version: str) -> None:
    gomod = (work / "go.mod").read_text()
    if f"github.com/dapr/dapr v{version}\n" not in gomod:
        raise LabEnvError(
            f"lab_env/stack/provision/dapr_build/go.mod does not require dapr v{version} (versions.toml)",
            "update go.mod to the pinned version and run `go mod tidy -e` there",
        )


def _write_slim_layout() -> None:
    """config.yaml and components/ as `dapr init --slim` leaves them, if absent."""
    from lab_env.stack.components import render_components

    home = dapr_home()
    config = home / "config.yaml"
    if not config.exists():
        config.write_text(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprConfig\nspec: {}\n"
        )
    comp = home / "components"
    if not comp.exists() or not any(comp.iterdir()):
        render_components(comp, profile="native", resolve_env=True)
