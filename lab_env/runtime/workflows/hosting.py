"""Start an app that runs a module's workflows (and actors) beside its own sidecar, and restart it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from lab_env.core.probes import Waiting, http_status, wait_all
from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp, start_app, uvicorn_command
from lab_env.stack.components import CONFIG_FILE

HOST_MODULE = "lab_env.runtime.workflows.host"


def start_workflow_app(
    app_id: str,
    module: str,
    *,
    cwd: Path | str | None = None,
    components: Iterable[str] = ("statestore",),
    env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
    detach: bool = False,
    sidecar_env: Mapping[str, str] | None = None,
    sidecar_args: Sequence[str] = (),
    config: Path | None = None,
    replica_of: str | None = None,
) -> DaprApp:
    """Start ``module``'s workflows (and ACTORS) in an app with its sidecar.
    ``sidecar_args``, ``sidecar_env`` and ``config`` go to daprd; ``replica_of`` makes it one more host
    of that app id (see start_app).

    ``module`` is importable from ``cwd`` (default: the notebook's workspace).
    The app gets LAB_LEDGER, a ledger file of its own (see ``ledger``).
    Returns once the workflow worker is connected to the sidecar.
    """
    from lab_env.notebooks.workspace import workspace

    folder = Path(cwd) if cwd else workspace()
    child_env = {
        "LAB_WORKFLOW_MODULE": module,
        "LAB_LEDGER": str(folder / f"{app_id}.ledger.sqlite"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")])),
        **(env or {}),
    }
    Path(child_env["LAB_LEDGER"]).unlink(missing_ok=True)
    app = start_app(
        app_id,
        uvicorn_command(f"{HOST_MODULE}:app"),
        cwd=folder,
        components=components,
        env=child_env,
        timeout=timeout,
        detach=detach,
        sidecar_env=sidecar_env,
        sidecar_args=sidecar_args,
        config=config or CONFIG_FILE,
        replica_of=replica_of,
    )
    wait_ready(app, timeout)
    return app


def start_agents_app(app_id: str, module: str, **kwargs) -> DaprApp:
    """Start a module that hosts agents: its ACTORS, and its workflows if it has
    a ``wfr``. The same host as start_workflow_app, named for what it runs."""
    return start_workflow_app(app_id, module, **kwargs)


def wait_ready(app: DaprApp, timeout: float = 90.0) -> None:
    """Wait until the app's workflow worker is connected to its sidecar."""

    def ready() -> bool:
        status = http_status(f"{app.app_url}/workflows/ready")
        if status == 500:
            reason = (
                sidecar.client(keep_alive=False).get(f"{app.app_url}/workflows/ready", timeout=5).text
            )  # the app's own route
            raise LabEnvError(f"{app.app_id}: the workflow worker did not start: {reason}", f"see {app.app_log}")
        return status == 204

    def died() -> str | None:
        return None if app.alive() else "the app or its sidecar exited"

    wait_all(
        {f"{app.app_id} workflow worker": Waiting(ready, failed=died, fix=f"see {app.app_log}")},
        timeout,
        app.app_id,
        progress=False,
    )


def restart(app: DaprApp, timeout: float = 90.0) -> None:
    """Start a crashed (or running) workflow app again and wait for its worker."""
    app.restart(timeout)
    wait_ready(app, timeout)
