"""Access to versions.toml, the single place the stack's versions are pinned."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VERSIONS_FILE = Path(__file__).parents[1] / "versions.toml"


@dataclass(frozen=True)
class Pins:
    dapr_runtime: str
    dapr_python_sdk: str
    dapr_cli: str
    kafka: str
    scala: str
    log4j: str
    redis: str
    images: dict[str, str]
    tools: dict[str, str]
    kubernetes: dict[str, str]
    kind_node: dict[str, str]

    def image(self, name: str) -> str:
        """Full image reference for the container profile, tag from the pins."""
        repo = self.images[name]
        if ":" in repo:
            return repo
        tag = {"dapr": self.dapr_runtime, "kafka": self.kafka, "redis": self.redis}[name]
        return f"{repo}:{tag}"

    @property
    def dapr_minor(self) -> str:
        return ".".join(self.dapr_runtime.split(".")[:2])


@cache
def pins() -> Pins:
    raw = tomllib.loads(VERSIONS_FILE.read_text())
    return Pins(
        dapr_runtime=raw["dapr"]["runtime"],
        dapr_python_sdk=raw["dapr"]["python_sdk"],
        dapr_cli=raw["dapr"]["cli"],
        kafka=raw["kafka"]["version"],
        scala=raw["kafka"]["scala"],
        log4j=raw["kafka"]["log4j"],
        redis=raw["redis"]["version"],
        images=dict(raw["images"]),
        tools=dict(raw["tools"]),
        kubernetes=dict(raw["kubernetes"]),
        kind_node=dict(raw["kind_node"]),
    )


def drift(gomod: str | None = None, pyproject: str | None = None, uvlock: str | None = None) -> list[str]:
    """Every place that disagrees with versions.toml (empty when all agree).

    Texts default to the files in the repo; tests pass altered ones to show
    a mismatch is caught.
    """
    from lab_env.core.paths import REPO_ROOT

    p = pins()
    gomod = (
        gomod if gomod is not None else (Path(__file__).parents[1] / "stack/provision/dapr_build/go.mod").read_text()
    )
    pyproject = pyproject if pyproject is not None else (REPO_ROOT / "pyproject.toml").read_text()
    uvlock = uvlock if uvlock is not None else (REPO_ROOT / "uv.lock").read_text()
    problems = []
    if f"github.com/dapr/dapr v{p.dapr_runtime}\n" not in gomod:
        problems.append(f"dapr_build/go.mod does not require github.com/dapr/dapr v{p.dapr_runtime}")
    cli_gomod = (Path(__file__).parents[1] / "stack/provision/dapr_cli_build/go.mod").read_text()
    if f"github.com/dapr/cli v{p.dapr_cli}" not in cli_gomod:
        problems.append(f"dapr_cli_build/go.mod does not require github.com/dapr/cli v{p.dapr_cli}")
    kube_gomod = (Path(__file__).parents[1] / "stack/provision/kube_build/go.mod").read_text()
    for module, key in (
        ("k8s.io/kubernetes", "version"),
        ("go.etcd.io/etcd/server/v3", "etcd"),
        ("sigs.k8s.io/kwok", "kwok"),
        ("sigs.k8s.io/metrics-server", "metrics_server"),
    ):
        if f"\t{module} v{p.kubernetes[key]}\n" not in kube_gomod:
            problems.append(f"kube_build/go.mod does not require {module} v{p.kubernetes[key]}")
    if p.dapr_python_sdk.split(".")[:2] != p.dapr_runtime.split(".")[:2]:
        problems.append(f"Python SDK {p.dapr_python_sdk} is not the runtime's minor {p.dapr_minor}")
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    locked = {pkg["name"]: pkg["version"] for pkg in tomllib.loads(uvlock).get("package", [])}
    for name in ("dapr", "dapr-ext-fastapi", "dapr-ext-workflow"):
        if f"{name}=={p.dapr_python_sdk}" not in deps:
            problems.append(f"pyproject.toml does not pin {name}=={p.dapr_python_sdk}")
        if locked.get(name) != p.dapr_python_sdk:
            problems.append(f"uv.lock has {name} {locked.get(name)}, pinned {p.dapr_python_sdk}")
    return problems
