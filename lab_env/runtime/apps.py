"""Run an agent app next to its Dapr sidecar: the one way labs, tests,
graders and the capstone start apps.

    with dapr_app(unique_name("product"), uvicorn_command("product_app:app"), cwd=folder) as app:
        ...  # app.sidecar_url is the sidecar's HTTP API, app.app_url the app's

Every port is picked free at start, app ids get a per-run suffix from
`unique_name`, and both processes are stopped when the block ends, whether
it ended normally, by an exception, or by a notebook interrupt.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.core import procs
from lab_env.core.paths import dapr_bin, state_dir
from lab_env.core.ports import free_ports
from lab_env.core.probes import Waiting, http_status, tcp_open, wait_all, wait_until  # noqa: F401  (wait_until: re-exported for notebooks)
from lab_env.core.profile import current
from lab_env.errors import LabEnvError
from lab_env.stack.components import CONFIG_FILE, render_components

_RUN_TOKEN = secrets.token_hex(3)
# Apps this Python process started and has not stopped, by id.
_started_here: dict[str, DaprApp] = {}
_APP_ID_OK = re.compile(r"^[a-z0-9]([a-z0-9-]{0,60}[a-z0-9])?$")


def run_token() -> str:
    """A short token fixed for this Python process (or inherited, in an app)."""
    return os.environ.get("LAB_RUN_TOKEN", _RUN_TOKEN)


def unique_name(prefix: str) -> str:
    """``prefix`` plus a suffix fixed for this Python process and unique to it.

    Use it for app ids, actor types and topics, so a lab can be re-run and
    two graders can run the same lab at once without sharing state. Apps
    started with dapr_app inherit the token, so they compute the same names.
    """
    return f"{prefix}-{run_token()}"


def apps_dir() -> Path:
    return state_dir() / "apps"


def uvicorn_command(target: str) -> list[str]:
    """Command that serves an ASGI app ``module:attr`` (found from ``cwd``) on the app port."""
    # daprd keeps idle connections to the app for 90 s (Go's default); uvicorn
    # closes them after 5 s by default, and a call sent on a connection the app
    # is just closing fails with a 500. The app keeps them longer than daprd.
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        "{app_port}",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "120",
    ]


@dataclass
class DaprApp:
    """A running app and its sidecar. Ports are on 127.0.0.1."""

    app_id: str
    http_port: int
    grpc_port: int
    app_port: int | None
    workdir: Path
    sidecar_pid: int = 0
    app_pid: int | None = None
    command: list[str] = field(default_factory=list)
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    sidecar_argv: list[str] = field(default_factory=list)
    sidecar_env: dict[str, str] = field(default_factory=dict)
    internal_port: int = 0  # sidecar-to-sidecar gRPC (mTLS when sentry is in use)

    @property
    def sidecar_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api_token(self) -> str | None:
        """The token this app's sidecar requires on its API (DAPR_API_TOKEN), if any."""
        return self.sidecar_env.get("DAPR_API_TOKEN")

    def api_headers(self) -> dict[str, str]:
        """What a caller of this sidecar's API sends: the token, when the sidecar requires one."""
        return {"dapr-api-token": self.api_token} if self.api_token else {}

    @property
    def app_url(self) -> str:
        if self.app_port is None:
            raise LabEnvError(f"{self.app_id} runs no app, only a sidecar", "pass a command to dapr_app")
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def sidecar_log(self) -> Path:
        return self.workdir / "daprd.log"

    @property
    def app_log(self) -> Path:
        return self.workdir / "app.log"

    def sdk_env(self) -> dict[str, str]:
        """Variables that point the Dapr Python SDK at this sidecar."""
        return {
            "DAPR_HTTP_PORT": str(self.http_port),
            "DAPR_GRPC_PORT": str(self.grpc_port),
            "DAPR_RUNTIME_HOST": "127.0.0.1",
        }

    def use_sdk(self) -> None:
        """Point the Dapr SDK in this Python process at this sidecar."""
        from dapr.conf import settings

        # The SDK's Settings fills its attributes from the environment at run time, so they are untyped.
        for key, value in {
            "DAPR_RUNTIME_HOST": "127.0.0.1",
            "DAPR_HTTP_PORT": self.http_port,
            "DAPR_GRPC_PORT": self.grpc_port,
            "DAPR_HTTP_ENDPOINT": None,
            "DAPR_GRPC_ENDPOINT": None,
        }.items():
            setattr(settings, key, value)

    def logs(self, which: str = "daprd", lines: int = 40) -> str:
        return procs.tail(self.sidecar_log if which == "daprd" else self.app_log, lines)

    def alive(self) -> bool:
        self._sync()
        return procs.alive(self.sidecar_pid) and (self.app_pid is None or procs.alive(self.app_pid))

    @property
    def name(self) -> str:
        return self.app_id

    def exit_reason(self) -> str | None:
        """Why the app or its sidecar is gone, or None while both run (a Watched for wait_until)."""
        return (_died(self, "app")() if self.command else None) or _died(self, "daprd")()

    def crash(self) -> None:
        """SIGKILL the app and its sidecar at once: the whole actor host dies,
        as when a machine or pod fails. Their state stays in the stack."""
        self._sync()
        for pid in (self.app_pid, self.sidecar_pid):
            if pid:
                procs.kill(pid)
        self.app_pid, self.sidecar_pid = None, 0
        self._save()

    def restart(self, timeout: float = 60.0) -> None:
        """Start the app and its sidecar again on the same ports; wait until healthy."""
        self._sync()
        for pid in (self.app_pid, self.sidecar_pid):
            if pid:
                procs.stop(pid, timeout=5)
        _launch(self, timeout, progress=False)

    def _save(self) -> None:
        # The whole launch spec is kept, so another process (the grader) can
        # rebuild this handle with load_app and crash or restart the app.
        record = {
            "app_id": self.app_id,
            "pids": [p for p in (self.sidecar_pid, self.app_pid) if p],
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "app_port": self.app_port,
            "workdir": str(self.workdir),
            "sidecar_pid": self.sidecar_pid,
            "app_pid": self.app_pid,
            "command": self.command,
            "cwd": str(self.cwd) if self.cwd else None,
            "env": self.env,
            "sidecar_argv": self.sidecar_argv,
            "sidecar_env": self.sidecar_env,
            "internal_port": self.internal_port,
        }
        path = apps_dir() / f"{self.app_id}.json"
        tmp = path.with_suffix(".tmp")
        # The sidecar's environment can hold a secret (the capstone's model key): owner-only.
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _sync(self) -> None:
        """Take the pids from the registry: another process may have restarted this app."""
        record = _read_record(self.app_id)
        if record and "sidecar_pid" in record:
            self.sidecar_pid, self.app_pid = record["sidecar_pid"], record["app_pid"]


def _validate_app_id(app_id: str) -> None:
    if not _APP_ID_OK.match(app_id):
        raise LabEnvError(f"app id {app_id!r} is not valid", "use lowercase letters, digits and hyphens (at most 62)")


def _sidecar_argv(
    app: DaprApp,
    internal_port: int,
    metrics_port: int,
    resources: Path,
    config: Path,
    log_level: str,
    extra: Sequence[str] = (),
) -> list[str]:
    prof = current()
    argv = [
        str(dapr_bin("daprd")),
        "--app-id",
        app.app_id,
        "--mode",
        "standalone",
        "--dapr-http-port",
        str(app.http_port),
        "--dapr-grpc-port",
        str(app.grpc_port),
        "--dapr-internal-grpc-port",
        str(internal_port),
        "--dapr-listen-addresses",
        "127.0.0.1",
        "--dapr-internal-grpc-listen-address",
        "127.0.0.1",
        "--metrics-port",
        str(metrics_port),
        "--metrics-listen-address",
        "127.0.0.1",
        "--placement-host-address",
        prof.placement_address,
        "--scheduler-host-address",
        prof.scheduler_address,
        "--resources-path",
        str(resources),
        "--config",
        str(config),
        "--log-level",
        log_level,
        "--dapr-graceful-shutdown-seconds",
        "2",
    ]
    if app.app_port is not None:
        argv += ["--app-port", str(app.app_port), "--app-protocol", "http", "--app-channel-address", "127.0.0.1"]
    # A flag given in ``extra`` replaces ours: daprd appends repeated list flags
    # (--scheduler-host-address) instead of taking the last.
    for flag in (tok for tok in extra if tok.startswith("--")):
        if flag in argv:
            at = argv.index(flag)
            del argv[at : at + 2]
    return argv + list(extra)


@contextmanager
def dapr_app(
    app_id: str,
    command: Sequence[str] | None = None,
    *,
    cwd: Path | str | None = None,
    components: Iterable[str] | None = None,
    resources: Iterable[Path] = (),
    config: Path = CONFIG_FILE,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    log_level: str = "info",
    progress: bool = False,
    sidecar_args: Sequence[str] = (),
    sidecar_env: Mapping[str, str] | None = None,
) -> Iterator[DaprApp]:
    """Start ``command`` (if any) and a daprd sidecar for it; stop both on exit.

    ``command`` may contain ``{app_port}``, replaced by the port the app must
    listen on (also in the APP_PORT variable). ``components`` limits the
    sidecar to the named components (default: all in components/);
    ``resources`` adds files such as declarative subscriptions. ``sidecar_args``
    and ``sidecar_env`` go to daprd only (mTLS flags and trust anchors, say).
    """
    app = start_app(
        app_id,
        command,
        cwd=cwd,
        components=components,
        resources=resources,
        config=config,
        env=env,
        timeout=timeout,
        log_level=log_level,
        progress=progress,
        sidecar_args=sidecar_args,
        sidecar_env=sidecar_env,
    )
    try:
        yield app
    finally:
        stop_app(app)


def start_app(
    app_id: str,
    command: Sequence[str] | None = None,
    *,
    cwd: Path | str | None = None,
    components: Iterable[str] | None = None,
    resources: Iterable[Path] = (),
    config: Path = CONFIG_FILE,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    log_level: str = "info",
    progress: bool = False,
    sidecar_args: Sequence[str] = (),
    sidecar_env: Mapping[str, str] | None = None,
    detach: bool = False,
) -> DaprApp:
    """Start an app and its sidecar and wait until both are healthy. See dapr_app.

    ``detach``: the app outlives this process (a CLI command started it);
    stop_app, from any process, or `lab-env down` stops it."""
    _validate_app_id(app_id)
    if not dapr_bin("daprd").exists():
        raise LabEnvError("daprd is not installed", "run `lab-env setup`")
    if app_id in _started_here:
        # Re-running a notebook's start cell replaces the app it started before.
        stop_app(_started_here.pop(app_id))
    record = apps_dir() / f"{app_id}.json"
    if record.exists() and _live_pids(record):
        raise LabEnvError(
            f"an app with id {app_id!r} is already running (started elsewhere)",
            "stop it (`lab-env down` stops all), or use lab_env.unique_name() for the id",
        )

    app_port, http_port, grpc_port, internal_port, metrics_port = free_ports(5)
    workdir = apps_dir() / app_id
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    resources_dir = render_components(workdir / "resources", only=components, extra=resources)

    app = DaprApp(app_id, http_port, grpc_port, app_port if command else None, workdir, internal_port=internal_port)
    child_env = {
        **current().component_env(),
        **app.sdk_env(),
        "APP_ID": app_id,
        "LAB_RUN_TOKEN": run_token(),
        **(env or {}),
    }
    if command:
        app.command = [part.replace("{app_port}", str(app_port)) for part in command]
        app.cwd = Path(cwd) if cwd else None
        app.env = {**child_env, "APP_PORT": str(app_port)}
    app.sidecar_argv = _sidecar_argv(app, internal_port, metrics_port, resources_dir, config, log_level, sidecar_args)
    app.sidecar_env = {**child_env, **(sidecar_env or {})}
    # If the Python process that started the app ends without stopping it (a
    # notebook kernel shut down mid-lab), stop it then.
    if not detach:
        atexit.register(stop_app, app)
    _launch(app, timeout, progress)
    _started_here[app_id] = app
    return app


def start_apps(apps: Mapping[str, Mapping[str, object]]) -> dict[str, DaprApp]:
    """Start several apps at once: {app id: start_app's keyword arguments}.

    They start in parallel (each one mostly waits for its processes), so ten
    apps take about as long as two. If any fails, the others are stopped
    again and the first failure is raised: all start, or none stays.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(apps)))) as pool:
        futures = {app_id: pool.submit(start_app, app_id, **kwargs) for app_id, kwargs in apps.items()}  # type: ignore[arg-type]
        errors = [e for f in futures.values() if (e := f.exception()) is not None]
        started = {app_id: f.result() for app_id, f in futures.items() if f.exception() is None}
    if errors:
        for app in started.values():
            stop_app(app)
        raise errors[0]
    return started


def stop_apps(apps: Iterable[DaprApp]) -> None:
    """stop_app for each, in parallel: an app busy with a long request takes
    its grace period to stop, and ten of those need not add up."""
    from concurrent.futures import ThreadPoolExecutor

    apps = list(apps)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(apps)))) as pool:
        list(pool.map(stop_app, apps))


def _launch(app: DaprApp, timeout: float, progress: bool) -> None:
    """Spawn the app (if any) and its sidecar, then wait until both are healthy.
    On any failure both are stopped again, so nothing is left half-started."""
    try:
        if app.command:
            app.app_pid = procs.spawn(app.command, app.app_log, env=app.env, cwd=app.cwd).pid
            app._save()
        app.sidecar_pid = procs.spawn(app.sidecar_argv, app.sidecar_log, env=app.sidecar_env).pid
        app._save()
        waiting = {}
        if app.command:
            waiting[f"{app.app_id} app"] = Waiting(
                lambda: tcp_open("127.0.0.1", app.app_port or 0), failed=_died(app, "app"), fix=f"see {app.app_log}"
            )
        # /v1.0/healthz answers 204 once the sidecar has loaded its components
        # and, when there is an app, reached it.
        waiting[f"{app.app_id} sidecar"] = Waiting(
            lambda: http_status(f"{app.sidecar_url}/v1.0/healthz") == 204,
            failed=_died(app, "daprd"),
            fix=f"see {app.sidecar_log}",
        )
        wait_all(waiting, timeout, app.app_id, progress)
    except BaseException:
        stop_app(app)
        raise


def _died(app: DaprApp, which: str):
    def check() -> str | None:
        pid = app.sidecar_pid if which == "daprd" else app.app_pid
        if pid and not procs.alive(pid):
            return f"{which} exited: {_last_error(app.logs(which, 30))}"
        return None

    return check


_DAPRD_MSG = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')


def _last_error(log_text: str) -> str:
    """The message of the last fatal/error line of a daprd log, else its last line."""
    found = _DAPRD_MSG.findall(log_text)
    if found:
        return found[-1].replace('\\"', '"')[:300]
    lines = [line for line in log_text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def stop_app(app: DaprApp) -> None:
    """Stop the sidecar, then the app, and forget them. Safe to call twice."""
    app._sync()
    for pid in (app.sidecar_pid, app.app_pid):
        if pid:
            procs.stop(pid, timeout=8)
    app.sidecar_pid, app.app_pid = 0, None
    (apps_dir() / f"{app.app_id}.json").unlink(missing_ok=True)
    if _started_here.get(app.app_id) is app:
        del _started_here[app.app_id]


def _read_record(app_id: str) -> dict | None:
    try:
        return json.loads((apps_dir() / f"{app_id}.json").read_text())
    except (OSError, ValueError):
        return None


def load_app(app_id: str) -> DaprApp:
    """The handle of a running app from its registry record (started by any process)."""
    record = _read_record(app_id)
    if not record or "http_port" not in record:
        raise LabEnvError(f"no app {app_id!r} is running", "start it with start_app first")
    return DaprApp(
        record["app_id"],
        record["http_port"],
        record["grpc_port"],
        record["app_port"],
        Path(record["workdir"]),
        sidecar_pid=record["sidecar_pid"],
        app_pid=record["app_pid"],
        command=list(record["command"]),
        cwd=Path(record["cwd"]) if record["cwd"] else None,
        env=dict(record["env"]),
        sidecar_argv=list(record["sidecar_argv"]),
        sidecar_env=dict(record["sidecar_env"]),
        internal_port=record.get("internal_port", 0),
    )


def _live_pids(record: Path) -> list[int]:
    try:
        pids = json.loads(record.read_text())["pids"]
    except (OSError, ValueError, KeyError):
        return []
    return [p for p in pids if procs.alive(p)]


def running_apps() -> list[str]:
    if not apps_dir().exists():
        return []
    return sorted(r.stem for r in apps_dir().glob("*.json") if _live_pids(r))


def stop_all_apps(token: str | None = None) -> list[str]:
    """Stop every app lab-env started that is still running (e.g. after a crash).

    With ``token``, only the apps of the process whose run token it is.
    """
    stopped: list[str] = []
    if not apps_dir().exists():
        return stopped
    for record in apps_dir().glob("*.json"):
        if token is not None and not record.stem.endswith(f"-{token}"):
            continue
        pids = _live_pids(record)
        for pid in pids:
            procs.stop(pid, timeout=5)
        record.unlink(missing_ok=True)
        if pids:
            stopped.append(record.stem)
    return stopped


def kill_run(token: str) -> None:
    """SIGKILL everything a run started (its processes carry LAB_RUN_TOKEN=token),
    then forget its apps. For graders: no graceful stop, nothing is kept."""
    from lab_env.runtime.clusters import (
        native as native_cluster,
    )  # it starts apps' peers; imported here to keep apps light

    procs.kill_by_env("LAB_RUN_TOKEN", token)
    stop_all_apps(token=token)
    native_cluster.forget_run(token)
