"""A graded submission's sandbox: the container its kernel (and every app the kernel starts) runs in.

Work in progress (issue 31, step 1), on a branch: this module builds what
`docs/sandbox-probe.md` found to work here, and nothing calls it yet. The
worker still runs kernels as the grader's user.

The image holds nothing but the merged-/usr links (``rootfs_tar``): everything
the kernel needs comes in read-only through bind mounts at the same paths as on
the host (the interpreter, the venv, ``lab_env``, the components, Dapr's
binaries, Kafka's jars), so nothing is pulled or copied. What is left out is
the point: the repository itself (``solutions/``, ``.git``, ``tests/``), other
submissions, the grader's key and results, and every host process (its own pid
namespace). The network is the host's, so the kernel's apps reach the stack on
127.0.0.1 and the worker reaches the kernel and the apps' ports as today.
"""

from __future__ import annotations

import io
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.core.paths import REPO_ROOT, cache_dir, dapr_home

IMAGE = "localhost/lab-env/grading-sandbox:1"
UID_BASE = 50000  # sandbox n runs as uid UID_BASE + n: no host user has it
_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
_DIRS = ("usr", "etc", "proc", "sys", "dev", "home", "work")


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
    found += sorted(p for p in cache_dir().glob("kafka-*") if p.is_dir())  # lab 03's brokers and tools
    unique: list[Path] = []
    for path in found:
        if path not in unique and not any(path.is_relative_to(u) and u != Path("/") for u in unique):
            unique.append(path)
    return [Mount(p) for p in unique]


@dataclass(frozen=True)
class Sandbox:
    """One submission's container: ``job`` holds its writable home and workspace (same paths inside)."""

    name: str  # the container's name: `docker rm -f` by it, whatever the kernel did
    job: Path
    number: int  # its uid is UID_BASE + number
    token: str  # LAB_RUN_TOKEN of the graded run
    memory: str = "2g"
    pids: int = 512
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def uid(self) -> int:
        return UID_BASE + self.number

    @property
    def home(self) -> Path:
        return self.job / "home"

    @property
    def workspace(self) -> Path:
        return self.job / "workspace"

    def env(self) -> dict[str, str]:
        """The whole environment the kernel gets: named here, never the worker's own (it may hold secrets)."""
        return {
            "HOME": str(self.home),
            "USER": "learner",
            "DAPR_HOME": str(dapr_home()),
            "LAB_ENV_CACHE": str(cache_dir()),
            "LAB_ENV_WORKSPACE": str(self.workspace),
            "LAB_RUN_TOKEN": self.token,
            "LAB_ENV_GRADING": "1",
            "MPLBACKEND": "agg",
            "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            **self.extra_env,
        }

    def run_argv(self, connection_file: Path, docker: str = "docker") -> list[str]:
        """`docker run -d ...` that starts the kernel with ``connection_file`` (readable by the sandbox's uid)."""
        argv = [docker, "run", "-d", "--name", self.name, "--network", "host", "--user", f"{self.uid}:{self.uid}"]
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only"]
        argv += ["--tmpfs", "/tmp:rw,size=256m,mode=1777", "--pids-limit", str(self.pids), "--memory", self.memory]
        for mount in [*read_only_mounts(), Mount(self.job, writable=True), Mount(connection_file.parent)]:
            argv += mount.flag()
        for key, value in self.env().items():
            argv += ["-e", f"{key}={value}"]
        argv += ["-w", str(self.workspace), IMAGE, "/usr/bin/tini", "--"]
        return [*argv, sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file)]
