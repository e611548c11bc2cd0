"""The Docker engine: one that already answers, or lab-env's own dockerd, started and stopped as a managed process.

    engine = find()                      # $DOCKER_HOST, /var/run/docker.sock, then ours; None if none answers
    engine = up()                        # find(), else start() lab-env's own (root, dockerd installed)
    engine.docker("run", "--rm", ref, "true")
    info(engine)                         # version, cgroup version, storage driver, privileged works?
    stop()                               # ours only: dockerd, its containerd and shims, their mounts

Ours keeps images under cache_dir()/docker (they survive runs; safe to delete),
and its socket and exec-root in a short folder under /run. It never listens on
/var/run/docker.sock: tools that find an engine there (kind, `lab-env cluster
--runtime auto`) must not find one lab-env left behind. Its default runtime is
runc_wrapper, so `--privileged` works on machines whose capability bounding set
lacks a capability. This module runs the docker CLI and compose; the bakery
runs `docker build` itself, for its progress bar.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from lab_env.core import procs, registry
from lab_env.core.paths import cache_dir, logs_dir
from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.stack import runc_wrapper
from lab_env.stack.lifecycle import pid_dir

RECORD = "dockerd"
RUNTIME = "lab-env-runc"
# The system's Python runs the wrapper (not the venv's, which `rm -rf .venv` would break).
WRAPPER_PYTHON = "/usr/bin/python3"
DEFAULT_SOCKET = Path("/var/run/docker.sock")
ANSWER_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0
# dockerd stops its containers first (shutdown-timeout 5 s each, in parallel), then
# containerd: a SIGKILL before that would leave shims and mounts behind.
STOP_TIMEOUT_S = 30.0
INSTALL_FIX = "run `lab-env setup --containers` (Debian's docker.io), or install Docker Desktop"


@dataclass(frozen=True)
class Engine:
    """A Docker engine that answers on ``host`` (a DOCKER_HOST value); ``managed``: lab-env started it."""

    host: str
    managed: bool

    def docker(
        self, *args: str, timeout: float = 60.0, input: bytes | None = None, limit: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine to its end; its output as text, never raising on failure.
        ``limit``: at most that many bytes of each stream kept, the command killed past it (procs.run_bounded)."""
        cli = shutil.which("docker")
        if not cli:
            raise LabEnvError("the docker CLI is not installed", INSTALL_FIX)
        env = {**os.environ, "DOCKER_HOST": self.host}
        if self.managed:  # ours speaks plain unix socket: no TLS settings meant for another engine
            for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
                env.pop(name, None)
        try:
            if limit is None:
                done = subprocess.run(
                    [cli, *args], env=env, input=input, capture_output=True, timeout=timeout, check=False
                )
            else:
                done = procs.run_bounded([cli, *args], limit=limit, timeout=timeout, env=env, input=input)
        except subprocess.TimeoutExpired as err:
            raise LabEnvError(
                f"`docker {' '.join(args)}` took over {timeout:.0f} s", "see `lab-env engine status`"
            ) from err
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        )

    def check(self, *args: str, timeout: float = 60.0, input: bytes | None = None) -> str:
        """``docker(*args)``'s output; a LabEnvError quoting its last error line when it fails."""
        done = self.docker(*args, timeout=timeout, input=input)
        if done.returncode != 0:
            raise LabEnvError(f"`docker {' '.join(args[:3])}` failed: {_why(done.stderr)}", self.fix)
        return done.stdout

    def compose(
        self, file: Path, project: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 900.0
    ) -> str:
        """``docker compose -f file -p project *args`` against this engine (the compose plugin, else
        Debian's docker-compose); its output, or a LabEnvError quoting its last error line."""
        plugin = self.docker("compose", "version", timeout=ANSWER_TIMEOUT_S).returncode == 0
        tool = [shutil.which("docker") or "docker", "compose"] if plugin else [shutil.which("docker-compose") or ""]
        if not tool[0]:
            raise LabEnvError("neither `docker compose` nor docker-compose is installed", INSTALL_FIX)
        argv = [*tool, "-f", str(file), "-p", project, *args]
        full = {**os.environ, **(env or {}), "DOCKER_HOST": self.host}
        try:
            done = subprocess.run(argv, env=full, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise LabEnvError(f"`compose {' '.join(args[:2])}` took over {timeout:.0f} s", self.fix) from err
        if done.returncode != 0:
            raise LabEnvError(f"`compose {' '.join(args[:2])}` failed: {_compose_why(done.stderr)}", self.fix)
        return done.stdout + done.stderr

    @property
    def fix(self) -> str:
        return f"see {log_path()}" if self.managed else "see your Docker engine's log"


def _why(stderr: str) -> str:
    """The docker CLI's error line ("docker: Error response ..."), not its closing usage hint."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("Run 'docker")]
    return registry.last_line("\n".join(lines))


def _compose_why(stderr: str) -> str:
    """compose's reason: its ERROR line or the line saying what is invalid, else its last line
    (after a reason, compose prints general advice)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith("ERROR") or "invalid" in line or "Error response" in line]
    return " ".join(reasons[:2]) if reasons else _why(stderr)


# --- where ours lives ---------------------------------------------------------------------


def engine_dir() -> Path:
    """daemon.json, the runtime wrapper and the pid file: in the root-owned run folder (mode 0700),
    never under a home a user could write, since root runs the wrapper for every container."""
    return run_dir() / "etc"


def data_root() -> Path:
    """Images, containers and volumes: under the cache, so they survive runs."""
    return cache_dir() / "docker"


def run_dir() -> Path:
    """Socket, exec-root and config: short (a unix socket path has at most 108 bytes, and a pytest
    LAB_ENV_STATE is long) and one per data root, so no two daemons ever share one."""
    digest = hashlib.sha1(str(data_root()).encode()).hexdigest()[:8]
    return Path("/run") / f"lab-env-{digest}"


def socket_path() -> Path:
    return run_dir() / "docker.sock"


def managed_host() -> str:
    return f"unix://{socket_path()}"


def log_path() -> Path:
    return logs_dir() / "dockerd.log"


def wrapper_path() -> Path:
    return engine_dir() / RUNTIME


def daemon_config() -> dict[str, object]:
    """daemon.json of ours: its own roots, socket, pid file and runtime; never the default socket."""
    return {
        "data-root": str(data_root()),
        "exec-root": str(run_dir() / "exec"),
        "hosts": [managed_host()],
        "pidfile": str(engine_dir() / "dockerd.pid"),
        "runtimes": {RUNTIME: {"path": str(wrapper_path())}},
        "default-runtime": RUNTIME,
        "shutdown-timeout": 5,
        # `-p 8080:80` publishes on loopback unless a compose file names another address.
        "ip": "127.0.0.1",
    }


# --- finding one that answers -------------------------------------------------------------


def _ping_unix(path: Path, timeout: float = 2.0) -> bool:
    """GET /_ping on a unix socket answers OK (cheap: no CLI, polled while ours starts)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def answers(host: str) -> bool:
    """An engine answers on ``host`` within ANSWER_TIMEOUT_S."""
    if host.startswith("unix://"):
        return _ping_unix(Path(host.removeprefix("unix://")), ANSWER_TIMEOUT_S)
    try:  # tcp:// or ssh://: let the CLI speak TLS and ssh
        return Engine(host, False).docker("version", timeout=ANSWER_TIMEOUT_S).returncode == 0
    except LabEnvError:
        return False


def candidates() -> list[Engine]:
    """Where an engine may answer, in order: $DOCKER_HOST, the system socket, ours."""
    found = []
    if os.environ.get("DOCKER_HOST"):
        found.append(Engine(os.environ["DOCKER_HOST"], os.environ["DOCKER_HOST"] == managed_host()))
    found.append(Engine(f"unix://{DEFAULT_SOCKET}", False))
    found.append(Engine(managed_host(), True))
    return found


def find() -> Engine | None:
    """The first engine that answers, or None."""
    return next((e for e in candidates() if answers(e.host)), None)


# --- ours ---------------------------------------------------------------------------------


def running_pid() -> int | None:
    """The pid of our dockerd, when its record names a live process we started."""
    record = registry.load(RECORD, pid_dir())
    live = registry.live_pids(record) if record else []
    return live[0] if live else None


def _write_files() -> Path:
    engine_dir().mkdir(parents=True, exist_ok=True)
    source = Path(runc_wrapper.__file__).read_text()
    wrapper = wrapper_path()
    if not Path(WRAPPER_PYTHON).exists():
        raise LabEnvError(f"{WRAPPER_PYTHON} is missing (it runs the runtime wrapper)", "install python3 (apt)")
    runc = shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/usr/bin")
    if runc is None:
        raise LabEnvError("runc is not installed (Docker needs it)", INSTALL_FIX)
    source = source.replace(f'RUNC = "{runc_wrapper.RUNC}"', f'RUNC = "{runc}"', 1)
    wrapper.write_text(f"#!{WRAPPER_PYTHON} -I\n" + source)
    wrapper.chmod(0o755)
    config = engine_dir() / "daemon.json"
    config.write_text(json.dumps(daemon_config(), indent=2) + "\n")
    return config


def start(timeout: float = START_TIMEOUT_S) -> Engine:
    """Start lab-env's own dockerd and wait until it answers; refuses where another engine answers."""
    other = find()
    if other is not None:
        if other.managed:
            return other
        # Two daemons would fight over docker0 and the iptables chains.
        raise LabEnvError(
            f"a Docker engine already answers on {other.host}", "use it: lab-env starts its own only where none does"
        )
    if os.geteuid() != 0:
        raise LabEnvError(
            "no Docker engine answers, and lab-env starts its own only as root",
            "start Docker yourself (`sudo dockerd`), or run as root",
        )
    if not shutil.which("dockerd"):
        raise LabEnvError("no Docker engine answers and dockerd is not installed", INSTALL_FIX)
    if running_pid() is not None:  # up but not answering: a hung daemon, not a second one
        raise LabEnvError(
            f"lab-env's dockerd (pid {running_pid()}) runs but does not answer", "run `lab-env engine down`, then up"
        )
    _leftovers(kill=True)  # a crashed run's containerd would hold the exec-root
    run_dir().mkdir(mode=0o700, exist_ok=True)
    run_dir().chmod(0o700)
    config = _write_files()
    host = managed_host()
    part = registry.Managed(RECORD, ["dockerd", "--config-file", str(config)], log_path(), ready=lambda: answers(host))
    try:
        registry.launch(registry.Record(RECORD), {RECORD: part}, timeout, "docker engine", where=pid_dir())
    except BaseException:
        stop()  # nothing half-started: no containerd, mount or socket folder left
        raise
    return Engine(host, True)


def up(timeout: float = START_TIMEOUT_S) -> Engine:
    """The engine that answers, else ours, started."""
    return find() or start(timeout)


DAEMON_PROCESSES = {"dockerd", "containerd", "containerd-shim-runc-v2", "docker-proxy", "runc"}


def _ours(proc: psutil.Process) -> bool:
    """``proc`` is one of our daemon's: a daemon process whose arguments name our run folder or
    data root (dockerd --config-file, containerd --config, shims' -address, all under them)."""
    try:
        if proc.name() not in DAEMON_PROCESSES:
            return False
        args = proc.cmdline()
    except psutil.Error:
        return False
    roots = (str(run_dir()), str(data_root()))
    return any(arg.startswith(roots) or arg.split("=", 1)[-1].startswith(roots) for arg in args)


def _mounts() -> list[str]:
    """Mount points under our data root or exec-root (overlays, netns, shm), deepest first."""
    roots = (str(data_root()) + "/", str(run_dir()) + "/")
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p.startswith(roots)), key=len, reverse=True)


def _leftovers(kill: bool) -> list[str]:
    """What of ours still runs or is mounted (killed and unmounted when ``kill``), as "pid N (name)" or "mount P"."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid != os.getpid() and _ours(proc):
            try:
                found.append(f"pid {proc.pid} ({proc.name()})")
                if kill:
                    proc.kill()  # this process only: a shim's group is not ours to signal
            except psutil.Error:
                pass  # gone meanwhile
    for point in _mounts():
        found.append(f"mount {point}")
        if kill:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return found


def stop(timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop our dockerd (never another engine); what had to be killed or unmounted after it.

    dockerd alone gets SIGTERM first: a signal to its whole process group would stop
    containerd under it while it still stops its containers.
    """
    pid = running_pid()
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            wait_until(lambda: not procs.alive(pid), timeout, "dockerd to stop", fix=f"see {log_path()}")
        except LabEnvError:
            pass  # registry.stop below kills it
    registry.stop(RECORD, timeout=5, where=pid_dir())
    for point in _mounts():
        # libnetwork's handle on the host's network namespace, made for the first `--network host`
        # container (a grading sandbox's) and never unmounted by dockerd: not a leftover, just ours to undo.
        if point.endswith("/netns/default"):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = _leftovers(kill=True)
    if not _mounts():
        shutil.rmtree(run_dir(), ignore_errors=True)
    return left


# --- what it is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Info:
    version: str
    cgroup: str  # "1" or "2"
    storage: str
    runtime: str
    privileged: bool | None  # None: not checked (no image to check with)

    def line(self) -> str:
        priv = {True: "privileged ok", False: "privileged FAILS", None: "privileged not checked"}[self.privileged]
        return f"docker {self.version}, cgroup v{self.cgroup}, {self.storage}, {priv} (runtime {self.runtime})"


def info(engine: Engine, image: str | None = None) -> Info:
    """What ``engine`` is; with ``image``, whether `docker run --privileged image true` works."""
    data = json.loads(engine.check("info", "--format", "{{json .}}", timeout=ANSWER_TIMEOUT_S))
    privileged = None
    if image is not None:
        privileged = engine.docker("run", "--rm", "--privileged", image, "true", timeout=60).returncode == 0
    return Info(
        str(data.get("ServerVersion", "?")),
        str(data.get("CgroupVersion", "?")),
        str(data.get("Driver", "?")),
        str(data.get("DefaultRuntime", "?")),
        privileged,
    )
