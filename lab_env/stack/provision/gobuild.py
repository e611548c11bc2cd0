"""`go build` of a build module in the cache, with a progress bar.

The bar's total is the package count `go list -deps` reports; `go build -v`
prints one line per package it compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from lab_env.core.paths import cache_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.errors import LabEnvError


def go_env() -> dict[str, str]:
    # The build module's go.sum is the checksum authority (some modules are
    # absent from the public checksum database); never fetch a toolchain.
    return {"GOSUMDB": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


def download_module(go: str, module: str, version: str, cwd: Path) -> Path:
    """Where the Go module cache holds ``module@version`` (``version`` with its "v"), downloaded if needed."""
    info = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        env={**os.environ, **go_env()},
        capture_output=True,
        text=True,
        check=False,
    )
    if info.returncode != 0:
        raise LabEnvError(
            f"could not download {module}@{version} from the Go module proxy: {info.stdout[-300:]}",
            "check network access to the Go module proxy",
        )
    return Path(json.loads(info.stdout)["Dir"])


def go_build(go: str, work: Path, packages: list[str], output: str, ldflags: str, what: str, log_name: str) -> None:
    """Build ``packages`` of the module in ``work`` into ``output`` (a file, or a folder ending in /)."""
    env = go_env()
    # Said before it starts: the module download below prints nothing, and a first build takes minutes.
    print(
        f"building {what} from the Go module proxy (kept for later runs). This takes minutes: "
        "its modules download first, then a bar counts the packages built.",
        flush=True,
    )
    try:
        deps = subprocess.run(
            [go, "list", "-deps", *packages],
            cwd=work,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as err:
        raise LabEnvError(f"could not run Go ({go}): {err}", "install Go 1.26+ and run `lab-env setup` again") from err
    if deps.returncode != 0:
        last = (deps.stderr.strip().splitlines() or ["?"])[-1]
        raise LabEnvError(
            f"resolving the {what} build failed: {last[:200]}", "check network access to the Go module proxy"
        )
    run_with_progress(
        [go, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", output, *packages],
        f"building {what} (Go)",
        cache_dir() / "logs" / log_name,
        total=len(deps.stdout.split()),
        counts=lambda line: not line.startswith(("go:", "#")),
        env=env,
        cwd=work,
        fix="run `lab-env setup` again; if it fails the same way, report the log",
    )
