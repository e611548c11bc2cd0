"""devcontainer/.env: the pins compose reads, rendered from versions.toml.

Compose cannot read TOML, so every image tag and tool version that
devcontainer/compose.yaml and devcontainer/Dockerfile use comes from
devcontainer/.env, which is generated from lab_env/versions.toml and
committed. The check fails when the committed file differs from the render,
or when a compose service's image does not resolve to its pin, so a version
changed in versions.toml cannot be forgotten in the container stack.

    python -m lab_env.stack.devcontainer --write   # after editing versions.toml
    python -m lab_env.stack.devcontainer --check   # what the tests and onCreate run
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab_env.core.paths import REPO_ROOT
from lab_env.core.versions import Pins, pins
from lab_env.errors import LabEnvError

DEVCONTAINER_DIR = REPO_ROOT / "devcontainer"
ENV_FILE = DEVCONTAINER_DIR / ".env"
COMPOSE_FILE = DEVCONTAINER_DIR / "compose.yaml"
GO_MOD = Path(__file__).parent / "provision" / "dapr_build" / "go.mod"

# Which pin (a key of versions.toml [images]) each compose service runs.
SERVICE_IMAGES = {
    "redis": "redis",
    "kafka": "kafka",
    "placement": "dapr",
    "scheduler": "dapr",
    "zipkin": "zipkin",
    "probe-tools": "busybox",
}

_HEADER = (
    "# Generated from lab_env/versions.toml by `python -m lab_env.stack.devcontainer --write`.\n"
    "# Do not edit by hand: tests/stack/test_devcontainer.py fails when this file differs\n"
    "# from the render. Compose reads it for the image tags and build args.\n"
)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def go_version(go_mod: Path = GO_MOD) -> str:
    """The Go toolchain the Dapr build module asks for (its `go` line)."""
    match = re.search(r"^go (\d+\.\d+(?:\.\d+)?)\s*$", go_mod.read_text(), re.MULTILINE)
    if not match:
        raise LabEnvError(f"{go_mod} has no `go` line", "restore the `go 1.x.y` line of the Dapr build module")
    return match[1]


def env_values(p: Pins | None = None, go_mod: Path = GO_MOD) -> dict[str, str]:
    """Every variable of devcontainer/.env, in file order."""
    p = p or pins()
    return {
        "DAPR_VERSION": p.dapr_runtime,
        "DAPR_IMAGE": p.image("dapr"),
        "KAFKA_IMAGE": p.image("kafka"),
        "REDIS_IMAGE": p.image("redis"),
        "ZIPKIN_IMAGE": p.image("zipkin"),
        "BUSYBOX_IMAGE": p.image("busybox"),
        "WORKSPACE_BASE_IMAGE": p.image("workspace"),
        # Where devcontainer/k8s-tools.sh runs: upstream the workspace base, which downloads
        # kubectl, kind and helm; here the bakery's image that holds them already.
        "K8S_TOOLS_IMAGE": p.image("workspace"),
        "GO_IMAGE": f"golang:{go_version(go_mod)}",
        "KIND_VERSION": p.tools["kind"],
        "KUBECTL_VERSION": p.tools["kubectl"],
        "HELM_VERSION": p.tools["helm"],
    }


def render_env(p: Pins | None = None) -> str:
    """The text devcontainer/.env must hold."""
    return _HEADER + "".join(f"{key}={value}\n" for key, value in env_values(p).items())


def write_env(path: Path = ENV_FILE) -> Path:
    path.write_text(render_env())
    return path


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (comments and blanks skipped)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def check_env(path: Path = ENV_FILE, expected: str | None = None) -> None:
    """Raise a one-line LabEnvError unless ``path`` holds exactly the render."""
    want = render_env() if expected is None else expected
    fix = "run `python -m lab_env.stack.devcontainer --write`, commit devcontainer/.env and rebuild the container"
    if not path.exists():
        raise LabEnvError(f"{path.name} is missing from {path.parent}", fix)
    have = path.read_text()
    if have == want:
        return
    got, pinned = parse_env(have), parse_env(want)
    diffs = [
        f"{key}={got.get(key, '<missing>')} but pinned {pinned.get(key, '<none>')}"
        for key in sorted(set(got) | set(pinned))
        if got.get(key) != pinned.get(key)
    ]
    raise LabEnvError(
        f"{path.name} differs from lab_env/versions.toml: {'; '.join(diffs) or 'same values, other text'}", fix
    )


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3] or ""
        have = env.get(name)
        empty = have is None or (op is not None and op.startswith(":") and have == "")
        if not empty:
            return str(have)
        if op and op.endswith("?"):
            raise LabEnvError(f"${{{name}}} is not set: {arg or 'required'}", "check devcontainer/.env")
        return arg if op and op.endswith("-") else ""

    return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def pin_mismatches(compose: Mapping[str, Any], env: Mapping[str, str], p: Pins | None = None) -> list[str]:
    """Why a parsed compose file's images or build args differ from the pins (empty: they match)."""
    p = p or pins()
    wanted = env_values(p)
    problems = []
    services = compose.get("services")
    if not isinstance(services, dict) or not services:
        return ["no services"]
    for name, svc in services.items():
        if "image" in svc:
            image = interpolate(str(svc["image"]), env)
            repo, _, tag = image.rpartition(":")
            if not repo or "/" in tag:
                problems.append(f"{name}: image {image} has no tag")
            elif tag == "latest":
                problems.append(f"{name}: image {image} uses the tag latest")
            elif name not in SERVICE_IMAGES:
                problems.append(f"{name}: image {image} has no pin in lab_env.stack.devcontainer.SERVICE_IMAGES")
            elif image != p.image(SERVICE_IMAGES[name]):
                problems.append(f"{name}: image {image} but pinned {p.image(SERVICE_IMAGES[name])}")
        build = svc.get("build")
        if isinstance(build, dict):
            for arg, raw in (build.get("args") or {}).items():
                value = interpolate(str(raw), env)
                if arg in wanted and value != wanted[arg]:
                    problems.append(f"{name}: build arg {arg}={value} but pinned {wanted[arg]}")
        if "image" not in svc and not build:
            problems.append(f"{name}: neither image nor build")
    return problems


def check_compose(compose_path: Path = COMPOSE_FILE, env_path: Path = ENV_FILE) -> None:
    """Raise a one-line LabEnvError unless every compose image resolves to its pin."""
    import yaml

    problems = pin_mismatches(yaml.safe_load(compose_path.read_text()), parse_env(env_path.read_text()))
    if problems:
        raise LabEnvError(
            f"{compose_path.name}: {'; '.join(problems)}",
            "make the compose file use the ${..._IMAGE} variables of devcontainer/.env",
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab_env.stack.devcontainer", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="render devcontainer/.env from versions.toml")
    mode.add_argument("--check", action="store_true", help="fail if devcontainer/ drifted from versions.toml")
    args = parser.parse_args(argv)
    try:
        if args.write:
            print(f"wrote {write_env()}")
            return 0
        check_env()
        check_compose()
    except LabEnvError as err:
        print(f"lab_env.stack.devcontainer: {err}", file=sys.stderr)
        return 1
    print("devcontainer/.env and compose.yaml match lab_env/versions.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
