"""Start the project's devcontainer for real, with the Dev Containers CLI, on this machine's engine.

    ws = up(engine, folder)          # devcontainer up: compose stack, workspace, onCreate, postStart
    exec_in(engine, ws, [".venv/bin/lab-env", "doctor"])
    down(engine, folder)             # containers, network and volumes gone

The CLI is `@devcontainers/cli` from npm at the version versions.toml pins,
installed under the cache. It reads devcontainer/local/devcontainer.json: the
committed config minus what needs a registry (see that file), on the
bakery's stand-in images (LAB_ENV_IMAGES=local).

``folder`` is a copy of the repository, never the one a suite runs from: the
workspace's onCreate makes its own .venv inside it. It is owned by uid 1000,
the workspace's vscode, as a codespace's checkout is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from lab_env.core import procs
from lab_env.core.paths import cache_dir, logs_dir
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack.engine import Engine
from lab_env.stack.images import bakery
from lab_env.stack.images.catalog import IMAGE_SET_VAR, compose_env, get

LOCAL_CONFIG = Path("devcontainer/local/devcontainer.json")
LOCAL_COMPOSE_FILES = (Path("devcontainer/compose.yaml"), Path("devcontainer/local/compose.local.yaml"))
# What the local run starts: every image compose.yaml names, each the bakery's stand-in.
IMAGES = ("workspace-base", "golang", "k8s-tools", "dapr", "redis", "kafka", "busybox", "zipkin")
WORKSPACE_UID = 1000
# compose.local.yaml's cache volumes: they outlive every workspace, like a prebuild's snapshot.
CACHE_VOLUMES = ("lab-env-devcontainer-cache", "lab-env-devcontainer-go")


@dataclass(frozen=True)
class Workspace:
    folder: Path
    container: str
    project: str


def cli_dir() -> Path:
    return cache_dir() / f"devcontainers-cli-{pins().tools['devcontainers_cli']}"


def install_cli() -> Path:
    """The pinned Dev Containers CLI, installed from npm on first use."""
    cli = cli_dir() / "node_modules" / ".bin" / "devcontainer"
    if cli.exists():
        return cli
    npm = shutil.which("npm")
    if not npm:
        raise LabEnvError("npm is not installed (it installs the Dev Containers CLI)", "install Node.js 18+ with npm")
    version = pins().tools["devcontainers_cli"]
    done = subprocess.run(
        [npm, "install", "--no-save", "--prefix", str(cli_dir()), f"@devcontainers/cli@{version}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not cli.exists():
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise LabEnvError(f"npm could not install @devcontainers/cli@{version}: {last}", "check access to npm")
    return cli


def _socket(engine: Engine) -> str:
    if not engine.host.startswith("unix://"):
        raise LabEnvError(
            f"the engine answers on {engine.host}, not a unix socket the workspace can mount",
            "use a local engine (`lab-env engine up`)",
        )
    return engine.host.removeprefix("unix://")


def _local_compose_env() -> dict[str, str]:
    """compose_env() for the local set, whatever the caller's environment chose."""
    before = os.environ.get(IMAGE_SET_VAR)
    os.environ[IMAGE_SET_VAR] = "local"
    try:
        return compose_env()
    finally:
        if before is None:
            os.environ.pop(IMAGE_SET_VAR)
        else:
            os.environ[IMAGE_SET_VAR] = before


def _cli_argv(cli: Path, command: str, folder: Path) -> list[str]:
    return [
        str(cli),
        command,
        "--workspace-folder",
        str(folder),
        "--config",
        str(folder / LOCAL_CONFIG),
        "--docker-path",
        shutil.which("docker") or "docker",
        "--docker-compose-path",
        _compose_path(),
    ]


def _compose_path() -> str:
    found = shutil.which("docker-compose")
    if not found:
        raise LabEnvError("docker-compose is not installed", "run `lab-env setup --containers` as root")
    return found


def up(engine: Engine, folder: Path) -> Workspace:
    """`devcontainer up` on ``folder``; the workspace once onCreate and postStart have run."""
    for name in IMAGES:
        bakery.require(engine, get(name).ref)
    for volume in CACHE_VOLUMES:
        engine.check("volume", "create", volume)
    cli = install_cli()
    log = logs_dir() / "devcontainer-up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # A container left from an earlier start of this folder is replaced, never reused half-set-up.
    argv = [*_cli_argv(cli, "up", folder), "--buildkit", "never", "--remove-existing-container"]
    with open(log, "w") as out:
        # stdout is the CLI's JSON result; its progress goes to stderr, kept in the log.
        done = subprocess.run(
            argv, env=_env(engine, folder), stdout=subprocess.PIPE, stderr=out, text=True, check=False
        )
    result = _result(done.stdout)
    if done.returncode != 0 or result.get("outcome") != "success":
        why = result.get("message") or result.get("description") or _last_error(log)
        down(engine, folder)  # nothing half-started
        raise LabEnvError(f"devcontainer up failed: {why}", f"see {log}")
    return Workspace(folder, result["containerId"], project_name(folder))


def _env(engine: Engine, folder: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DOCKER_HOST": engine.host,
        IMAGE_SET_VAR: "local",
        "COMPOSE_PROJECT_NAME": project_name(folder),
    }
    env.update(_local_compose_env())
    env["LAB_ENV_DOCKER_SOCKET"] = _socket(engine)
    return env


def project_name(folder: Path) -> str:
    """Compose's project for ``folder``: named after it, so two copies never share containers
    (left to itself compose would call every copy's project "devcontainer")."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    return f"lab-env-devcontainer-{digest}"


def _result(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return {}


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line or "failed" in line]
    return (errors or lines or ["no output"])[-1][:300]


def exec_in(engine: Engine, ws: Workspace, argv: Sequence[str], timeout: float = 1800.0) -> subprocess.CompletedProcess:
    """``argv`` in the workspace, as the remote user, in the workspace folder (`devcontainer exec`)."""
    cli = install_cli()
    return subprocess.run(
        [*_cli_argv(cli, "exec", ws.folder), *argv],
        env=_env(engine, ws.folder),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Run by the workspace's python3 for each forwarded connection: stdin to the port, the port to stdout.
_RELAY = """
import socket, sys, threading
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while chunk := sys.stdin.buffer.read1(65536):
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while chunk := conn.recv(65536):
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
"""


@contextmanager
def forwarded(engine: Engine, ws: Workspace, port: int) -> Iterator[str]:
    """The workspace's 127.0.0.1:``port`` at a URL here, forwarded as an editor forwards a port:
    each connection is piped through `docker exec` into the container, and nothing is published."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    stopping = threading.Event()
    env = {**os.environ, "DOCKER_HOST": engine.host}
    docker = shutil.which("docker") or "docker"

    def pipe(read: Callable[[], bytes], write: Callable[[bytes], object], done: Callable[[], object]) -> None:
        try:
            while chunk := read():
                write(chunk)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                done()

    def serve(conn: socket.socket) -> None:
        relay = procs.piped([docker, "exec", "-i", ws.container, "python3", "-c", _RELAY, str(port)], env)
        assert relay.stdin and relay.stdout
        # The pipe of a Popen with bufsize -1 is a BufferedReader: read1 returns what has arrived.
        from_relay = cast(io.BufferedReader, relay.stdout)

        def to_relay(chunk: bytes) -> None:
            assert relay.stdin
            relay.stdin.write(chunk)
            relay.stdin.flush()

        inbound = threading.Thread(target=pipe, args=(lambda: conn.recv(65536), to_relay, relay.stdin.close))
        inbound.start()
        pipe(lambda: from_relay.read1(65536), conn.sendall, lambda: conn.shutdown(socket.SHUT_WR))
        inbound.join()
        conn.close()
        relay.wait()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stopping.set()
        acceptor.join()
        server.close()


def down(engine: Engine, folder: Path) -> None:
    """``folder``'s compose project removed, containers, network and volumes (the CLI has no down);
    also after an `up` that failed half-way."""
    files = [arg for path in LOCAL_COMPOSE_FILES for arg in ("-f", str(folder / path))]
    done = subprocess.run(
        [_compose_path(), *files, "-p", project_name(folder), "down", "-v", "--remove-orphans"],
        env=_env(engine, folder),
        capture_output=True,
        text=True,
        check=False,
    )
    # The workspace of a start under another project name (the CLI labels it with the folder).
    left = engine.check("ps", "-aq", "--filter", f"label=devcontainer.local_folder={folder}").split()
    if left:
        engine.check("rm", "-f", "-v", *left)
    if done.returncode != 0:
        raise LabEnvError(f"compose down of {project_name(folder)} failed: {done.stderr.strip()[-300:]}", engine.fix)


def copy_repo(source: Path, target: Path) -> Path:
    """The repository's tracked and new files (not ignored ones) copied to ``target``, owned by the
    workspace user."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = Path(os.fsdecode(raw))
        src = source / rel
        if not src.exists():  # deleted in the tree, not yet in the index
            continue
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    for path in [target, *target.rglob("*")]:
        os.lchown(path, WORKSPACE_UID, WORKSPACE_UID)
    # The parent is the workspace's /workspaces (compose mounts ../..): vscode must enter it.
    target.parent.chmod(0o755)
    return target
