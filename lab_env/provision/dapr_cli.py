"""The Dapr CLI (`dapr`) built from Go modules, like the runtime in dapr.py.

`go install github.com/dapr/cli@vX` does not work here: it reads the
module's @v/list (for deprecation notices), which the Go module proxy
refuses. So the CLI is built from a small module of ours, dapr_cli_build/,
whose go.sum is the checksum authority, and installed as ~/.dapr/bin/dapr,
next to daprd, where `dapr init --slim` would put it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import LabEnvError
from ..paths import cache_dir, dapr_bin
from ..progress import run_with_progress
from ..versions import pins
from .dapr import go_env
from .prereqs import require_go

BUILD_MODULE = Path(__file__).parent / "dapr_cli_build"
PACKAGE = "github.com/dapr/cli"
# The runtime API version the CLI talks to (its Makefile's default).
_API_VERSION = "1.0"


def installed_cli_version(binary: Path | None = None) -> str | None:
    """The version `dapr version` reports for the CLI itself, or None."""
    binary = binary or dapr_bin("dapr")
    if not binary.exists():
        return None
    try:
        out = subprocess.run(
            [binary, "version", "--output", "json"],
            capture_output=True, text=True, check=False, timeout=30,
        )
        return json.loads(out.stdout).get("Cli version") or None
    except (OSError, subprocess.TimeoutExpired, ValueError, AttributeError):
        return None


def cli_installed() -> bool:
    return installed_cli_version() == pins().dapr_cli


def install_dapr_cli(force: bool = False) -> Path:
    """Build the pinned Dapr CLI (unless already there) and return its path."""
    target = dapr_bin("dapr")
    if cli_installed() and not force:
        return target
    go = require_go()
    version = pins().dapr_cli
    built = build_cli(go, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy then rename, so a `dapr` that is running keeps its (old) file.
    tmp = target.with_name(".dapr.new")
    try:
        shutil.copy2(built, tmp)
        tmp.replace(target)
    except OSError as err:
        raise LabEnvError(f"could not install the Dapr CLI to {target}: {err}", f"check that {target.parent} is writable") from err
    got = installed_cli_version(target)
    if got != version:
        raise LabEnvError(f"the Dapr CLI built at {target} reports version {got!r}, not {version}", "run `lab-env setup` again; if it fails the same way, report it")
    return target


def build_cli(go: str, version: str) -> Path:
    """Build `dapr` in the cache; returns the path of the binary."""
    work = cache_dir() / f"dapr-cli-build-{version}"
    out = work / "bin" / "dapr"
    try:
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(BUILD_MODULE, work)
    except OSError as err:
        raise LabEnvError(f"could not prepare the Dapr CLI build in {work}: {err}", "check that the lab-env cache folder is writable") from err
    _check_module_version(work, version)

    env = go_env()
    try:
        deps = subprocess.run(
            [go, "list", "-deps", PACKAGE],
            cwd=work, env={**os.environ, **env}, capture_output=True, text=True, check=False,
        )
    except OSError as err:
        raise LabEnvError(f"could not run Go ({go}): {err}", "install Go 1.26+ and run `lab-env setup` again") from err
    if deps.returncode != 0:
        last = (deps.stderr.strip().splitlines() or ["?"])[-1]
        raise LabEnvError(f"resolving the Dapr CLI build failed: {last[:200]}", "check network access to the Go module proxy")
    ldflags = f"-s -w -X main.version={version} -X main.apiVersion={_API_VERSION}"
    run_with_progress(
        [go, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(out), PACKAGE],
        f"building Dapr CLI {version} (Go)",
        cache_dir() / "logs" / "dapr-cli-build.log",
        total=len(deps.stdout.split()),
        counts=lambda line: not line.startswith(("go:", "#")),
        env=env,
        cwd=work,
        fix="run `lab-env setup` again; if it fails the same way, report the log",
    )
    return out


def _check_module_version(work: Path, version: str) -> None:
    gomod = (work / "go.mod").read_text()
    if f"require {PACKAGE} v{version}\n" not in gomod and f"\t{PACKAGE} v{version}\n" not in gomod:
        raise LabEnvError(
            f"lab_env/provision/dapr_cli_build/go.mod does not require {PACKAGE} v{version} (versions.toml)",
            "update go.mod to the pinned version and run `GOSUMDB=off go mod tidy -e` there",
        )
