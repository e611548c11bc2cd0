"""A graded submission's sandbox: the container its kernel (and every app the kernel starts) runs in.

The image holds nothing but the merged-/usr links (``rootfs_tar``): everything
the kernel needs comes in read-only through bind mounts at the same paths as on
the host (the interpreter, the venv, ``lab_env``, the components, Dapr's
binaries, Kafka's jars), so nothing is pulled or copied. What is left out is
the point: the repository itself (``solutions/``, ``.git``, ``tests/``), other
submissions, the grader's key, results and graded notebook (its hidden checks),
and every host process (its own pid namespace). The network is the host's, so
the kernel's apps reach the stack on 127.0.0.1 and the worker reaches the
kernel and the apps' ports as today. docs/grading.md has the threat model;
docs/sandbox-probe.md the probe this was built from.

The worker never acts on the sandbox's processes itself: their pids belong to
the container, and their registry records are the learner's to write. Crashing,
restarting or reading an app goes through ``exec_lab_env`` (``docker exec`` as
the sandbox's user, see inside.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import json
import os
import shutil
import stat
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lab_env.core import ports, procs
from lab_env.core.paths import REPO_ROOT, cache_dir, dapr_home, state_dir
from lab_env.errors import LabEnvError
from lab_env.stack import engine as engines
from lab_env.stack.images import zipkin
from lab_env.stack.images.zipkin import maven_repository

IMAGE = "localhost/lab-env/grading-sandbox:1"
UID_BASE = 50000  # sandbox n runs as uid UID_BASE + n: no host user has it
PORT_SLICES = 8  # sandboxes graded side by side take their apps' ports from disjoint slices of the window
_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
_DIRS = ("usr", "etc", "proc", "sys", "dev", "home", "work")
MODES = ("auto", "on", "off")
_CACHE_LEFT_OUT = {"docker", "images", "logs"}
# inside.py, started so that it is not dumpable before anything is imported: the learner's
# processes (same user) watching /proc could otherwise open its fds while it starts. Isolated
# (-I) and without site (-S) until then, so no module of the learner's stands in for it.
_INSIDE_BOOT = (
    "import ctypes, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0: sys.exit('PR_SET_DUMPABLE failed')\n"
    "import site; site.main()\n"
    "import runpy; runpy.run_module('lab_env.grading.inside', run_name='__main__', alter_sys=True)\n"
)
_INSIDE = [sys.executable, "-I", "-S", "-c", _INSIDE_BOOT]
TINI = "/usr/bin/tini"  # the sandbox's PID 1, from the host's /usr: it forwards an interrupt to the kernel


def rootfs_tar() -> bytes:
    """The image's whole file system: the merged-/usr links and empty mount points (a few hundred bytes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in _DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
        for name, target in _LINKS.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


# Labs whose checks the sandbox cannot carry yet, and why: graded without one (auto says so in the
# feedback), and `--sandbox on` refuses them.
NOT_YET: dict[str, str] = {}


def choose(mode: str, lab: str = "") -> tuple[engines.Engine | None, str]:
    """The engine to sandbox with, or None and why to grade as the grader's user.

    ``auto`` sandboxes where an engine on this machine answers and the grader is root (it hands
    each sandbox's folder to the sandbox's uid), for every lab but those in NOT_YET; ``on``
    requires it; ``off`` never sandboxes."""
    if mode not in MODES:
        raise LabEnvError(f"--sandbox {mode!r} is not one of {', '.join(MODES)}", "pass auto, on or off")
    if mode == "off":
        return None, "--sandbox off"
    found = engines.find()
    why = ""
    if lab[:2] in NOT_YET:
        why = f"lab {lab[:2]} is not graded in a sandbox yet: {NOT_YET[lab[:2]]}"
    elif found is None:
        why = "no Docker engine answers"
    elif not found.host.startswith("unix://"):
        why = f"the engine on {found.host} is not on this machine (the sandbox shares its loopback and folders)"
    elif os.geteuid() != 0:
        why = "the grader is not root (it gives each sandbox its own uid)"
    elif not Path(TINI).exists():
        why = f"{TINI} is missing (`lab-env setup --containers` installs it)"
    if not why:
        return found, ""
    if mode == "on":
        raise LabEnvError(f"cannot grade in a sandbox: {why}", "`lab-env engine up` as root, or --sandbox off")
    return None, why


def ensure_image(engine: engines.Engine) -> None:
    """Import the links-only image once (nothing to pull or build)."""
    if engine.docker("image", "inspect", IMAGE, timeout=30).returncode == 0:
        return
    engine.check("import", "-", IMAGE, input=rootfs_tar(), timeout=120)


@dataclass(frozen=True)
class Mount:
    source: Path
    writable: bool = False

    def flag(self) -> list[str]:
        return ["-v", f"{self.source}:{self.source}:{'rw' if self.writable else 'ro'}"]


def read_only_mounts() -> list[Mount]:
    """What every sandbox reads: the system, the interpreter, the venv, lab_env and what it runs."""
    found = [Path("/usr"), Path("/etc"), Path(sys.base_prefix), Path(sys.prefix)]
    found += [REPO_ROOT / "lab_env", REPO_ROOT / "components", dapr_home()]
    # Built tools (Kafka's jars, the Kubernetes and Dapr builds lab 05 runs); not the engine's data,
    # the bakery's build contexts or logs, which hold other runs' files.
    zipkin_jars = maven_repository() / zipkin.GROUP.replace(".", "/")  # lab 07's tracing server
    if zipkin_jars.is_dir():
        found.append(zipkin_jars)
    if cache_dir().is_dir():
        found += sorted(p for p in cache_dir().iterdir() if p.is_dir() and p.name not in _CACHE_LEFT_OUT)
    unique: list[Path] = []
    for path in found:
        if path not in unique and not any(path.is_relative_to(u) and u != Path("/") for u in unique):
            unique.append(path)
    return [Mount(p) for p in unique]


def port_window(slot: int, worker: bool = False) -> str:
    """``low-high``: the ports lab-env chooses from (see ports.window) in sandbox ``slot``, or, with
    ``worker``, for what its worker's checks start on the host. Submissions graded side by side
    hold different slots (``lease_slot``), so no two choose from the same slice: a sandbox cannot
    see another's reservations, nor the host's, whose ports lie outside every slice."""
    span = ports.sandbox_span()  # not the worker's own slice, which it may have set already
    size = len(span) // (2 * PORT_SLICES)
    low = span.start + (2 * (slot % PORT_SLICES) + worker) * size
    return f"{low}-{low + size - 1}"


class Slot(NamedTuple):
    number: int  # 0 .. PORT_SLICES - 1: the sandbox's uid and port slices
    fd: int  # the open lock file: the lock lasts while any process holding this descriptor lives


@contextlib.contextmanager
def lease_slot(poll_s: float = 0.2) -> Iterator[Slot]:
    """A sandbox slot no other grading on this machine holds until the block ends: its port slices
    and its uid are its own. Every `lab-env grade` (and the suite's side-by-side tests) draws
    from the same PORT_SLICES: a lock per slot, which the kernel drops once no process holds its
    descriptor. The grading worker inherits it (``Slot.fd``), so the slot stays taken until the
    worker has removed its sandbox, even if `lab-env grade` dies first."""
    folder = state_dir() / "sandbox-slots"
    folder.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for number in range(PORT_SLICES):
            handle = open(folder / f"{number}.lock", "w")  # noqa: SIM115 (held open for the whole block)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield Slot(number, handle.fileno())
            finally:
                handle.close()  # the lock goes once the worker, if it inherited it, is gone too
            return
        if not said:
            print(f"waiting for a grading sandbox slot: other gradings hold all {PORT_SLICES}", file=sys.stderr)
            said = True
        time.sleep(poll_s)  # a slot frees when another submission's grading ends; no event to wait on


@dataclass(frozen=True)
class Sandbox:
    """One submission's container: ``job`` holds its writable home and workspace (same paths inside)."""

    name: str  # the container's name: `docker rm -f` by it, whatever the kernel did
    job: Path
    number: int  # its slot in the batch: no two sandboxes graded side by side share one; its uid is UID_BASE + it
    token: str  # LAB_RUN_TOKEN of the graded run
    memory: str = "3g"
    pids: int = 1024
    extra_env: tuple[tuple[str, str], ...] = ()  # services of the worker's the kernel may use (its trial desk)

    @property
    def uid(self) -> int:
        return UID_BASE + self.number

    @property
    def home(self) -> Path:
        return self.job / "home"

    @property
    def workspace(self) -> Path:
        return self.job / "workspace"

    @property
    def connection_file(self) -> Path:
        return self.job / "kernel.json"  # in root's folder: nothing of the learner's is on its way

    def env(self) -> dict[str, str]:
        """The whole environment the kernel gets: named here, never the worker's own (it may hold secrets)."""
        return {
            "HOME": str(self.home),
            "USER": "learner",
            "DAPR_HOME": str(dapr_home()),
            "LAB_ENV_CACHE": str(cache_dir()),
            "LAB_ENV_MAVEN_REPO": str(maven_repository()),
            "LAB_ENV_WORKSPACE": str(self.workspace),
            "LAB_ENV_PORT_WINDOW": port_window(self.number),
            "LAB_RUN_TOKEN": self.token,
            "LAB_ENV_GRADING": "1",
            "LAB_ENV_PROGRESS": "0",
            "MPLBACKEND": "agg",
            "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        } | dict(self.extra_env)

    def prepare(self) -> None:
        """An empty home and workspace, the sandbox's own (mode 0700: no other sandbox's uid reads them),
        in a folder that stays root's, so the learner cannot swap either for a link elsewhere."""
        shutil.rmtree(self.job, ignore_errors=True)
        self.job.mkdir(parents=True, exist_ok=True)
        self.job.chmod(0o755)
        for folder in (self.home, self.workspace):
            folder.mkdir(exist_ok=True)
            os.chown(folder, self.uid, self.uid)
            folder.chmod(0o700)

    def keep_logs(self, dest: Path, limit: int = 1_000_000, budget: int = 20_000_000) -> int:
        """Copy the run's app and sidecar logs (``apps/<id>/{app,daprd,worker}.log`` in lab-env's state folder
        in its home) and lab-env's own (``logs/*.log``) to ``dest`` before ``prepare`` empties the
        home: the last ``limit`` bytes of each, ``budget`` bytes in all; how many files.

        Only once the container is removed (``remove`` confirms it): no process of the learner's is
        left to swap anything under it. Even so, every step is opened by descriptor without following
        a link, and only regular files are read (a FIFO or device would block or never end)."""
        kept, left, opened = 0, budget, []
        try:
            opened.append(_open_dirs(self.home, (".local", "state", "lab-env")))
        except OSError:
            return 0  # the run started nothing of lab-env's, or the learner made it something else
        try:
            state = opened[0]
            sources: list[tuple[int, str, Path]] = []  # (folder fd, file name, where it goes)
            for folder in ("apps", "logs"):
                try:
                    opened.append(fd := os.open(folder, _DIR_FLAGS, dir_fd=state))
                except OSError:
                    continue
                if folder == "logs":  # lab-env's own: read first, so many apps cannot crowd them out
                    logs = (e.name for e in os.scandir(fd) if e.name.endswith(".log"))
                    sources = [(fd, name, Path(folder) / name) for name in itertools.islice(logs, 50)] + sources
                    continue
                for entry in itertools.islice(os.scandir(fd), 500):  # apps/<id>/: each app's own folder
                    if entry.is_dir(follow_symlinks=False):
                        try:
                            opened.append(app := os.open(entry.name, _DIR_FLAGS, dir_fd=fd))
                        except OSError:
                            continue
                        sources += [(app, n, Path(folder) / entry.name / n) for n in APP_LOGS]
            for folder_fd, name, where in sources:
                copied = _copy_tail(folder_fd, name, dest / where, min(limit, left))
                left -= copied
                kept += copied > 0
        except OSError as err:  # a full disk, say: the logs are a help, never a reason to fail a run
            print(f"keeping the sandbox's logs stopped: {err}", flush=True)
        finally:
            for fd in opened:
                os.close(fd)
        return kept

    def run_argv(self, connection_file: Path, docker: str = "docker") -> list[str]:
        """`docker run` that starts the kernel with ``connection_file`` (in ``job``, readable by the sandbox's uid).

        In the foreground, so the kernel manager's process is the container's: SIGINT reaches the
        kernel through tini (an interrupt), and the container exits when the kernel does."""
        argv = [docker, "run", "--rm", "--name", self.name, "--network", "host", "--user", f"{self.uid}:{self.uid}"]
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only"]
        argv += ["--tmpfs", "/tmp:rw,size=256m,mode=1777", "--pids-limit", str(self.pids), "--memory", self.memory]
        for mount in [*read_only_mounts(), Mount(self.job, writable=True)]:
            argv += mount.flag()
        for key, value in self.env().items():
            argv += ["-e", f"{key}={value}"]
        argv += ["-w", str(self.workspace), IMAGE, TINI, "--"]
        return [*argv, sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file)]

    def exec_argv(self, argv: list[str], env: Mapping[str, str], cwd: Path, tethered: bool) -> list[str]:
        """`docker exec` of ``argv`` in the sandbox as its user, in ``cwd``, with its own environment
        and ``env``; ``tethered``: it ends when this command's input closes (procs.Confinement)."""
        docker = shutil.which("docker") or "docker"
        out = [docker, "exec", *(["-i"] if tethered else []), "--user", f"{self.uid}:{self.uid}", "-w", str(cwd)]
        for key, value in {**self.env(), **env}.items():
            out += ["-e", f"{key}={value}"]
        out.append(self.name)
        if tethered:
            out += [*_INSIDE, "tether", "--"]
        return out + argv

    def confinement(self, engine: engines.Engine) -> procs.Confinement:
        """What the worker's checks start with a working folder in this sandbox runs in it."""
        host_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": engine.host}
        return procs.Confinement(self.job, self.exec_argv, host_env, scratch=self.job / "checks", owner=self.uid)

    def exec_lab_env(self, engine: engines.Engine, *args: str, timeout: float = 300.0) -> Any:
        """``python -m lab_env.grading.inside *args`` in the sandbox, as its user; its JSON answer.

        A LabEnvError if the sandbox is gone or the command fails (its last line says why)."""
        # From /, isolated (-I): no folder of the learner's on sys.path, so no module of theirs stands in.
        argv = ["exec", "--user", f"{self.uid}:{self.uid}", "-w", "/"]
        for key, value in self.env().items():
            argv += ["-e", f"{key}={value}"]
        argv += [self.name, *_INSIDE, *args]
        # Bounded: a process of the learner's, as the same user, can write into this command's output.
        done = engine.docker(*argv, timeout=timeout, limit=procs.CAPTURE_LIMIT)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            why = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            raise LabEnvError(f"in the sandbox, {' '.join(args[:3])} failed: {why}", "see the worker's log")
        try:
            return json.loads(lines[-1])
        except (ValueError, RecursionError):  # another process of the learner's wrote to its output
            raise LabEnvError(f"in the sandbox, {' '.join(args[:3])} gave no answer", "see the worker's log") from None

    def remove(self, engine: engines.Engine) -> bool:
        """The container and every process in it, gone (the kernel, its apps, their sidecars): whether
        the engine confirms it (a LabEnvError only if the engine does not answer in time)."""
        engine.docker("rm", "-f", self.name, timeout=60)  # -f: a container already gone is no error
        left = engine.docker("container", "inspect", self.name, timeout=60)
        return left.returncode != 0 and "no such container" in left.stderr.lower()


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# What an app's folder holds worth keeping: an app's and its sidecar's output, and a worker's
# (lab 03's consumers and Kafka nodes, whose last words say why one exited).
APP_LOGS = ("app.log", "daprd.log", "worker.log")


def _open_dirs(top: Path, steps: tuple[str, ...]) -> int:
    """A descriptor of ``top/steps...``, each step opened without following a link."""
    fd = os.open(top, _DIR_FLAGS)
    for step in steps:
        try:
            inner = os.open(step, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = inner
    return fd


def _copy_tail(folder_fd: int, name: str, target: Path, limit: int) -> int:
    """The last ``limit`` bytes of the regular file ``name`` in ``folder_fd``, written to ``target``
    (no more than the file holds on disk, so a sparse file cannot swell); how many bytes."""
    if limit <= 0:
        return 0
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=folder_fd)
    except OSError:
        return 0  # absent, or a link
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0  # a folder, FIFO or device by that name
        size = min(limit, info.st_size, info.st_blocks * 512)
        data = os.pread(fd, size, max(0, info.st_size - size))
    finally:
        os.close(fd)
    if not data:
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return len(data)
