"""Where the stack's services are: on this machine, or in compose containers.

native    - `lab-env up` runs every service as a local process on 127.0.0.1.
container - the devcontainer's compose file runs them as services named
            redis, kafka, placement and scheduler (devcontainer/compose.yaml).

The profile comes from LAB_ENV_PROFILE (the devcontainer sets it); the
default is native. Component files read hosts from the LAB_* variables
below through `envRef`, so one set of files serves both profiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lab_env.errors import LabEnvError

PROFILES = ("native", "container")


@dataclass(frozen=True)
class Profile:
    name: str
    redis_host: str
    kafka_host: str
    placement_host: str
    scheduler_host: str

    redis_port: int = 6379
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    placement_port: int = 50005
    # placement's health server, which also serves its table (/placement/state, --metadata-enabled)
    placement_healthz_port: int = 58080
    scheduler_port: int = 50006

    @property
    def redis_address(self) -> str:
        return f"{self.redis_host}:{self.redis_port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def placement_address(self) -> str:
        return f"{self.placement_host}:{self.placement_port}"

    @property
    def placement_table_url(self) -> str:
        return f"http://{self.placement_host}:{self.placement_healthz_port}/placement/state"

    @property
    def scheduler_address(self) -> str:
        return f"{self.scheduler_host}:{self.scheduler_port}"

    def component_env(self) -> dict[str, str]:
        """The variables components/*.yaml read with envRef."""
        return {"LAB_REDIS_HOST": self.redis_address, "LAB_KAFKA_BROKERS": self.kafka_bootstrap}

    def dapr_cli_env(self) -> dict[str, str]:
        """What a plain `dapr run` (CLI 1.12) needs: it never passes the
        scheduler address, and daprd 1.18 reads it from this variable."""
        return {**self.component_env(), "DAPR_SCHEDULER_HOST_ADDRESS_DNS_A": self.scheduler_address}


NATIVE = Profile("native", "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1")
CONTAINER = Profile("container", "redis", "kafka", "placement", "scheduler")


def from_native(profile: Profile) -> dict[str, str]:
    """Each native address a component names -> the same service's address under ``profile``."""
    return {NATIVE.component_env()[key]: value for key, value in profile.component_env().items()}


def current() -> Profile:
    name = os.environ.get("LAB_ENV_PROFILE", "native")
    if name not in PROFILES:
        raise LabEnvError(f"LAB_ENV_PROFILE={name!r} is not a profile", f"use one of {', '.join(PROFILES)}")
    return NATIVE if name == "native" else CONTAINER
