"""The Dapr CLI (`dapr`) built from Go modules, like the runtime in dapr.py.

`go install github.com/dapr/cli@vX` does not work here: it reads the
module's @v/list (for deprecation notices), which the Go module proxy
refuses. So the CLI is built from a small module of ours, dapr_cli_build/,
whose go.sum is the checksum authority, and installed as ~/.dapr/bin/dapr,
next to daprd, where `dapr init --slim` would put it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from lab_env.core.paths import cache_dir, dapr_bin
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack.provision.gobuild import go_build
from lab_env.stack.provision.prereqs import require_go

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
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
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
        raise LabEnvError(
            f"could not install the Dapr CLI to {target}: {err}", f"check that {target.parent} is writable"
        ) from err
    got = installed_cli_version(target)
    if got != version:
        raise LabEnvError(
            f"the Dapr CLI built at {target} reports version {got!r}, not {version}",
            "run `lab-env setup` again; if it fails the same way, report it",
        )
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
        raise LabEnvError(
            f"could not prepare the Dapr CLI build in {work}: {err}", "check that the lab-env cache folder is writable"
        ) from err
    _check_module_version(work, version)

    ldflags = f"-s -w -X main.version={version} -X main.apiVersion={_API_VERSION}"
    go_build(go, work, [PACKAGE], str(out), ldflags, f"Dapr CLI {version}", "dapr-cli-build.log")
    return out


def _check_module_version(work: Path, version: str) -> None:
    gomod = (work / "go.mod").read_text()
    if f"require {PACKAGE} v{version}\n" not in gomod and f"\t{PACKAGE} v{version}\n" not in gomod:
        raise LabEnvError(
            f"lab_env/stack/provision/dapr_cli_build/go.mod does not require {PACKAGE} v{version} (versions.toml)",
            "update go.mod to the pinned version and run `GOSUMDB=off go mod tidy -e` there",
        )
