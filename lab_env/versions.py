"""Access to versions.toml, the single place the stack's versions are pinned."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VERSIONS_FILE = Path(__file__).with_name("versions.toml")


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
    )
