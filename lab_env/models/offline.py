"""Start and stop the offline model server (offline_app.py) as a managed
process on a free loopback port.

    model = offline.start()        # waits until it answers
    model.base_url                 # http://127.0.0.1:<port>/v1, for the openai client
    offline.stop(model)            # also `lab-env down`: its record carries the run token
"""

from __future__ import annotations

import atexit
import sys
from dataclasses import dataclass

from lab_env.core import registry
from lab_env.core.names import run_token, unique_name
from lab_env.core.paths import logs_dir
from lab_env.core.ports import free_ports
from lab_env.core.probes import http_status


@dataclass
class OfflineModel:
    name: str
    port: int
    pid: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def start(timeout: float = 60.0, detach: bool = False) -> OfflineModel:
    """The offline model server, started and answering. ``detach``: it outlives this process."""
    (port,) = free_ports(1)
    model = OfflineModel(unique_name("offline-model"), port)
    argv = [sys.executable, "-m", "uvicorn", "lab_env.models.offline_app:app", "--host", "127.0.0.1"]
    process = registry.Managed(
        "the offline model server",
        [*argv, "--port", str(port), "--log-level", "warning"],
        logs_dir() / f"{model.name}.log",
        ready=lambda: http_status(f"http://127.0.0.1:{port}/health") == 200,
    )
    registry.launch(
        registry.Record(model.name, token=run_token()), {"the offline model server": process}, timeout, model.name
    )
    model.pid = process.pid
    if not detach:
        atexit.register(stop, model)
    return model


def stop(model: OfflineModel) -> None:
    """Stop it and forget its record. Safe to call twice."""
    registry.stop(model.name, timeout=10)
    model.pid = 0
