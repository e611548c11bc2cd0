"""A tiny image built here, with no registry: Debian's busybox-static, imported into the engine.

    ref = busybox.ensure(engine)      # localhost/lab-env/busybox:debian, built once (a few seconds)

It is what the engine's checks run (`--privileged` works?) and what the engine's
tests start. Nothing is pulled: the package comes from the Debian mirror apt uses.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from lab_env.core.paths import cache_dir
from lab_env.errors import LabEnvError
from lab_env.stack.engine import Engine
from lab_env.stack.images import catalog

REF = catalog.get("busybox").ref
FIX = "install busybox-static's prerequisites: apt-get and dpkg (Debian or Ubuntu)"


def built(engine: Engine) -> bool:
    return engine.docker("image", "inspect", REF, timeout=30).returncode == 0


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise LabEnvError(f"`{' '.join(argv)}` failed: {lines[-1]}", FIX)
    return done.stdout


def rootfs(folder: Path) -> Path:
    """Unpack busybox-static into ``folder``/root with a link per applet (/bin/sh, /bin/wget...); the root."""
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise LabEnvError("busybox needs apt-get and dpkg to be built here", FIX)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _run(["apt-get", "download", "-q", "busybox-static"], folder)
    deb = next(folder.glob("busybox-static_*.deb"))
    root = folder / "root"
    _run(["dpkg", "-x", str(deb), str(root)], folder)
    busybox = root / "bin" / "busybox"
    # The static binary runs on the host, so it can list its own applets.
    for line in _run([str(busybox), "--list-full"], folder).split():
        link = root / line
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    for name in ("tmp", "proc", "sys", "dev", "etc"):
        (root / name).mkdir(exist_ok=True)
    return root


def ensure(engine: Engine, force: bool = False, label: str = "") -> str:
    """Build and import the image unless ``engine`` has it; its reference."""
    if built(engine) and not force:
        return REF
    root = rootfs(cache_dir() / "images" / "busybox")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=".")
    changes = ["--change", 'CMD ["/bin/sh"]'] + (["--change", f"LABEL {label}"] if label else [])
    engine.check("import", *changes, "-", REF, input=buf.getvalue(), timeout=120)
    return REF
