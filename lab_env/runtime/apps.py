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
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_env.core import procs, registry
from lab_env.core.names import run_token as run_token  # re-exported: notebooks import both from here
from lab_env.core.names import unique_name as unique_name
from lab_env.core.paths import dapr_bin
from lab_env.core.ports import free_ports, hold
from lab_env.core.probes import Waiting, http_status, tcp_open, wait_all, wait_until  # noqa: F401  (wait_until: re-exported for notebooks)
from lab_env.core.profile import current
from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar
from lab_env.stack.components import CONFIG_FILE, render_components

# Apps this Python process started and has not stopped, by id.
_started_here: dict[str, DaprApp] = {}
_APP_ID_OK = re.compile(r"^[a-z0-9]([a-z0-9-]{0,60}[a-z0-9])?$")


def apps_dir() -> Path:
    """The process registry's folder: each app's record and its files (lab_env.core.registry)."""
    return registry.directory()


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
    started: dict[int, float] = field(default_factory=dict)  # pid -> its process start time (the pid-reuse guard)

    @property
    def sidecar_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api_token(self) -> str | None:
        """The token this app's sidecar requires on its API (DAPR_API_TOKEN), if any."""
        return self.sidecar_env.get("DAPR_API_TOKEN")

    def api_headers(self) -> dict[str, str]:
        """What a caller of this sidecar's API sends: the token, when the sidecar requires one."""
        return sidecar.headers(self)

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
        return self._ours(self.sidecar_pid) and (self.app_pid is None or self._ours(self.app_pid))

    @property
    def name(self) -> str:
        return self.app_id

    def exit_reason(self) -> str | None:
        """Why the app or its sidecar is gone, or None while both run (a Watched for wait_until)."""
        return (_died(self, "app")() if self.command else None) or _died(self, "daprd")()

    def ports(self) -> list[int]:
        """Every port the app and its sidecar listen on (a restart takes the same ones)."""
        argv = self.sidecar_argv
        metrics = int(argv[argv.index("--metrics-port") + 1]) if "--metrics-port" in argv else 0
        return [p for p in (self.app_port, self.http_port, self.grpc_port, self.internal_port, metrics) if p]

    def crash(self) -> None:
        """SIGKILL the app and its sidecar at once: the whole actor host dies,
        as when a machine or pod fails. Their state stays in the stack."""
        self._sync()
        hold(self.ports())  # kept for the restart that usually follows
        for pid in (self.app_pid, self.sidecar_pid):
            if pid and self._may_stop(pid):
                procs.kill(pid)
        self.app_pid, self.sidecar_pid = None, 0
        self._save()

    def restart(self, timeout: float = 60.0) -> None:
        """Start the app and its sidecar again on the same ports; wait until healthy."""
        self._sync()
        hold(self.ports())  # nobody else takes them while they are unbound
        for pid in (self.app_pid, self.sidecar_pid):
            if pid and self._may_stop(pid):
                procs.stop(pid, timeout=5)
        _launch(self, timeout, progress=False)

    def _ours(self, pid: int) -> bool:
        """``pid`` is this app's process, still running (not a pid the kernel gave to another since)."""
        return pid > 0 and registry.is_ours(pid, self.started.get(pid))

    def _may_stop(self, pid: int) -> bool:
        """``pid`` is no other process's: this app's, running or gone (what it forked may be left)."""
        return pid > 0 and not registry.reused(pid, self.started.get(pid))

    def _save(self) -> None:
        # The whole launch spec is kept, so another process (the grader) can
        # rebuild this handle with load_app and crash or restart the app.
        record = registry.Record(
            self.app_id,
            [p for p in (self.sidecar_pid, self.app_pid) if p],
            dict(self.started),
            self.sidecar_env.get("LAB_RUN_TOKEN"),
            {
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
            },
        )
        registry.save(record)  # mode 0600: the sidecar's environment can hold a secret (the capstone's model key)
        self.started = record.start_times  # with any start time save had to read itself

    def _sync(self) -> None:
        """Take the pids from the registry: another process may have restarted this app."""
        record = registry.load(self.app_id)
        if record and "sidecar_pid" in record.extra:
            self.sidecar_pid, self.app_pid = record.extra["sidecar_pid"], record.extra["app_pid"]
            self.started = record.start_times


def is_app_id(name: str) -> bool:
    """``name`` is a valid app id (what a grader checks of an id it did not choose)."""
    return bool(_APP_ID_OK.match(name))


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
    dapr_id: str | None = None,
) -> list[str]:
    prof = current()
    argv = [
        str(dapr_bin("daprd")),
        "--app-id",
        dapr_id or app.app_id,
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
def dapr_app(app_id: str, command: Sequence[str] | None = None, **options: Any) -> Iterator[DaprApp]:
    """``start_app(app_id, command, **options)`` as a context manager: both stop on exit."""
    app = start_app(app_id, command, **options)
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
    replica_of: str | None = None,
) -> DaprApp:
    """Start ``command`` (if any) and a daprd sidecar for it, and wait until both are healthy.

    ``command`` may contain ``{app_port}``, replaced by the port the app must
    listen on (also in the APP_PORT variable). ``components`` limits the
    sidecar to the named components (default: all in components/);
    ``resources`` adds files such as declarative subscriptions. ``sidecar_args``
    and ``sidecar_env`` go to daprd only (mTLS flags and trust anchors, say).

    ``detach``: the app outlives this process (a CLI command started it);
    stop_app, from any process, or `lab-env down` stops it.

    ``replica_of``: the sidecar announces that app id instead of ``app_id`` (which still names this process
    pair for lab_env): another replica of that app. Dapr keys actor state by the host's app id, so an actor
    that moves to another host finds its state only on a replica of the same app."""
    _validate_app_id(app_id)
    if replica_of is not None:
        _validate_app_id(replica_of)
    if not dapr_bin("daprd").exists():
        raise LabEnvError("daprd is not installed", "run `lab-env setup`")
    if app_id in _started_here:
        # Re-running a notebook's start cell replaces the app it started before.
        stop_app(_started_here.pop(app_id))
    running = registry.load(app_id)
    if running and registry.live_pids(running):
        raise LabEnvError(
            f"an app with id {app_id!r} is already running (started elsewhere)",
            "stop it (`lab-env down` stops all), or use lab_env.unique_name() for the id",
        )

    for attempt in range(PORT_ATTEMPTS):
        app = _prepare(
            app_id, command, cwd, components, resources, config, env, log_level, sidecar_args, sidecar_env, replica_of
        )
        try:
            _launch(app, timeout, progress)  # on any failure, both processes are stopped again
            break
        except LabEnvError:
            # Another program on the machine bound a chosen port in the moment before the app or its
            # sidecar did: nothing of this try runs any more, so fresh ports are safe to take.
            if not _port_taken(app) or attempt == PORT_ATTEMPTS - 1:
                raise
    # If the Python process that started the app ends without stopping it (a
    # notebook kernel shut down mid-lab), stop it then.
    if not detach:
        atexit.register(stop_app, app)
    _started_here[app_id] = app
    return app


PORT_ATTEMPTS = 3
PORT_TAKEN = "address already in use"  # what Go's net package (daprd) and Python's (uvicorn) say of a held port


def _port_taken(app: DaprApp) -> bool:
    """The app or its sidecar failed to bind a port (in its log's last lines: an app at a chatty log level
    logs its shutdown after the error)."""
    return any(PORT_TAKEN in app.logs(which, 30) for which in ("daprd", "app") if which == "daprd" or app.command)


def _prepare(
    app_id: str,
    command: Sequence[str] | None,
    cwd: Path | str | None,
    components: Iterable[str] | None,
    resources: Iterable[Path],
    config: Path,
    env: Mapping[str, str] | None,
    log_level: str,
    sidecar_args: Sequence[str],
    sidecar_env: Mapping[str, str] | None,
    replica_of: str | None,
) -> DaprApp:
    """A handle for a new app on fresh ports, with its folder and resources written; nothing started."""
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
        "APP_ID": replica_of or app_id,
        "LAB_RUN_TOKEN": run_token(),
        **(env or {}),
    }
    if command:
        app.command = [part.replace("{app_port}", str(app_port)) for part in command]
        app.cwd = Path(cwd) if cwd else None
        app.env = {**child_env, "APP_PORT": str(app_port)}
    app.sidecar_argv = _sidecar_argv(
        app, internal_port, metrics_port, resources_dir, config, log_level, sidecar_args, dapr_id=replica_of
    )
    app.sidecar_env = {**child_env, **(sidecar_env or {})}
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
            app.app_pid = _spawn(app, app.command, app.app_log, app.env, app.cwd)
            app._save()
        app.sidecar_pid = _spawn(app, app.sidecar_argv, app.sidecar_log, app.sidecar_env)
        app._save()
        waiting = {}
        if app.command:
            waiting[f"{app.app_id} app"] = Waiting(
                lambda: tcp_open("127.0.0.1", app.app_port or 0), failed=_died(app, "app"), fix=f"see {app.app_log}"
            )
        # The sidecar's health check answers 204 once it has loaded its components
        # and, when there is an app, reached it.
        waiting[f"{app.app_id} sidecar"] = Waiting(
            lambda: http_status(sidecar.health_url(app.sidecar_url)) == 204,
            failed=_died(app, "daprd"),
            fix=f"see {app.sidecar_log}",
        )
        wait_all(waiting, timeout, app.app_id, progress)
    except BaseException:
        stop_app(app)
        raise


def _spawn(app: DaprApp, argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> int:
    """Start one of the app's processes and note its start time (a pid seen before may come back)."""
    pid = procs.spawn(argv, log, env=env, cwd=cwd).pid
    app.started[pid] = registry.start_time(pid)
    return pid


def _died(app: DaprApp, which: str):
    def check() -> str | None:
        pid = app.sidecar_pid if which == "daprd" else app.app_pid
        if pid and not app._ours(pid):
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
        if pid and app._may_stop(pid):
            procs.stop(pid, timeout=8)
    app.sidecar_pid, app.app_pid = 0, None
    registry.forget(app.app_id)
    if _started_here.get(app.app_id) is app:
        del _started_here[app.app_id]


def _read_record(app_id: str) -> dict | None:
    """The app's record as plain fields (its launch spec, "app_id", "pids"), or None."""
    record = registry.load(app_id)
    return {**record.extra, "app_id": record.name, "pids": record.pids} if record else None


def load_app(app_id: str) -> DaprApp:
    """The handle of a running app from its registry record (started by any process)."""
    record = registry.load(app_id)
    if not record or "http_port" not in record.extra:
        raise LabEnvError(f"no app {app_id!r} is running", "start it with start_app first")
    spec = record.extra
    return DaprApp(
        record.name,
        spec["http_port"],
        spec["grpc_port"],
        spec["app_port"],
        Path(spec["workdir"]),
        sidecar_pid=spec["sidecar_pid"],
        app_pid=spec["app_pid"],
        command=list(spec["command"]),
        cwd=Path(spec["cwd"]) if spec["cwd"] else None,
        env=dict(spec["env"]),
        sidecar_argv=list(spec["sidecar_argv"]),
        sidecar_env=dict(spec["sidecar_env"]),
        internal_port=spec.get("internal_port", 0),
        started=record.start_times,
    )


def apps_of_run(token: str) -> list[DaprApp]:
    """Handles on the running apps of the run ``token`` (their ids end in ``-token``). A grader whose
    kernel runs in a sandbox lists them there instead (``list_apps_of_runs_with``)."""
    if _apps_of_run is not None:
        return _apps_of_run(token)
    found = []
    for app_id in running_apps():
        if app_id.endswith(f"-{token}"):
            try:
                found.append(load_app(app_id))
            except LabEnvError:
                continue  # a worker or view of the run, not an app
    return found


_apps_of_run: Callable[[str], list[DaprApp]] | None = None


def list_apps_of_runs_with(source: Callable[[str], list[DaprApp]] | None) -> None:
    global _apps_of_run
    _apps_of_run = source


def running_apps() -> list[str]:
    """Every registered name (apps, workers, planes, views) with a process still running."""
    return [name for name in registry.names() if (r := registry.load(name)) and registry.live_pids(r)]


def stop_all_apps(token: str | None = None) -> list[str]:
    """Stop every app lab-env started that is still running (e.g. after a crash).

    With ``token``, only the apps of the process whose run token it is.
    """
    stopped: list[str] = []
    for name in registry.names():
        if token is not None and not _of_run(name, token):
            continue
        if registry.stop(name, timeout=5):
            stopped.append(name)
    return stopped


def _of_run(name: str, token: str) -> bool:
    """The record was made by the run ``token``: it says so, or (older records) its name ends in the token."""
    record = registry.load(name)
    return name.endswith(f"-{token}") or (record is not None and record.token == token)


def kill_run(token: str) -> None:
    """SIGKILL everything a run started (its processes carry LAB_RUN_TOKEN=token),
    then forget its apps. For graders: no graceful stop, nothing is kept."""
    from lab_env.runtime.clusters import (
        native as native_cluster,
    )  # it starts apps' peers; imported here to keep apps light

    procs.kill_by_env("LAB_RUN_TOKEN", token)
    stop_all_apps(token=token)
    native_cluster.forget_run(token)
