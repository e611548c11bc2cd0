"""The runtime lab-env's dockerd runs containers with: runc, minus capabilities this machine cannot grant.

`docker run --privileged` asks for every capability; where the capability
bounding set lacks one (these machines lack CAP_SYS_RESOURCE), runc fails
with "unable to apply caps: operation not permitted". This wrapper removes
each capability missing from its own bounding set (CapBnd in /proc/self/status)
from the OCI spec runc is about to read, then execs runc with the same arguments:

    <bundle>/config.json  for `runc create|run --bundle <bundle>` (process.capabilities)
    <process file>        for `runc exec --process <file>` (capabilities)

Standard library only: engine.py writes this file as an executable script
run by the system's `python3 -I`, not the venv's, which `rm -rf .venv` would break.
Without `--bundle` or `--process` (runc's other commands) it changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RUNC = "/usr/sbin/runc"  # Debian's runc, which docker.io depends on

# capability(7) numbers, as /proc/<pid>/status's CapBnd bit mask counts them.
CAPS = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT "
    "SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE "
    "AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ "
    "PERFMON BPF CHECKPOINT_RESTORE"
).split()
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def missing_caps(status: str | None = None) -> set[str]:
    """The CAP_* names the bounding set lacks (``status``: /proc/self/status's text)."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    mask = next(int(line.split()[1], 16) for line in text.splitlines() if line.startswith("CapBnd:"))
    return {f"CAP_{name}" for bit, name in enumerate(CAPS) if not mask >> bit & 1}


def strip_caps(capabilities: dict[str, Any], missing: set[str]) -> bool:
    """Remove ``missing`` from each of the 5 sets, in place; whether anything was removed."""
    changed = False
    for key in SETS:
        caps = capabilities.get(key)
        if isinstance(caps, list) and any(c in missing for c in caps):
            capabilities[key] = [c for c in caps if c not in missing]
            changed = True
    return changed


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in ``argv``, or None."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _rewrite(path: Path, caps_of, missing: set[str]) -> None:
    spec = json.loads(path.read_text())
    caps = caps_of(spec)
    if not isinstance(caps, dict) or not strip_caps(caps, missing):
        return
    # Atomically: runc must never read a half-written spec.
    tmp = path.with_name(f".{path.name}.lab-env-runc.tmp")
    tmp.write_text(json.dumps(spec))
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    tmp.replace(path)


def fix_spec(argv: list[str], missing: set[str]) -> None:
    """Strip ``missing`` from the spec files ``argv`` (runc's arguments) names."""
    if not missing:
        return
    bundle = option(argv, "--bundle")
    if bundle:
        _rewrite(Path(bundle) / "config.json", lambda s: s.get("process", {}).get("capabilities"), missing)
    process = option(argv, "--process")
    if process:
        _rewrite(Path(process), lambda s: s.get("capabilities"), missing)


def main(argv: list[str]) -> None:
    fix_spec(argv[1:], missing_caps())
    os.execv(RUNC, [RUNC, *argv[1:]])


if __name__ == "__main__":
    main(sys.argv)
