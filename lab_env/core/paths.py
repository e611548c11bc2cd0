"""Where lab-env keeps things. Every location can be moved by one env var."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPONENTS_DIR = REPO_ROOT / "components"


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def cache_dir() -> Path:
    """Downloads and builds (Go and Maven output, Kafka jars): safe to delete."""
    return _env_path("LAB_ENV_CACHE", Path.home() / ".cache" / "lab-env")


def state_dir() -> Path:
    """Running stack: pid files, logs, Kafka and scheduler data."""
    return _env_path("LAB_ENV_STATE", Path.home() / ".local" / "state" / "lab-env")


def dapr_home() -> Path:
    """The layout `dapr init --slim` makes: bin/, components/, config.yaml."""
    return _env_path("DAPR_HOME", Path.home() / ".dapr")


def dapr_bin(name: str) -> Path:
    return dapr_home() / "bin" / name


def logs_dir() -> Path:
    return state_dir() / "logs"
