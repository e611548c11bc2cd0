"""Starting, finding and stopping the processes lab-env owns.

Every process runs in its own session (process group) with its output in a
log file, so stopping it also stops anything it forked and nothing it prints
is lost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from lab_env.errors import LabEnvError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Confinement:
    """Where a grader's worker runs the learner's code its checks start: a process whose working
    folder lies in ``root`` (a grading sandbox's folder) runs in the sandbox instead, as the argv
    ``wrap(argv, env, cwd, tethered)`` returns (``docker exec ...``), with ``host_env`` as the
    wrapper's own environment. A tethered process ends when its wrapper does (see grading/inside.py)."""

    root: Path
    wrap: Callable[[list[str], Mapping[str, str], Path, bool], list[str]]
    host_env: dict[str, str]
    # Folders a check prepares for what it starts in the sandbox go in ``scratch`` (in ``root``,
    # the grader's, so the learner can neither write there nor swap a folder in it for a link);
    # hand_over gives their insides to ``owner``, the sandbox's uid. None: not offered.
    scratch: Path | None = None
    owner: int | None = None


_confinement: Confinement | None = None
# Confined wrappers, kept so their input pipes stay open (never read): the process inside ends when
# its wrapper does, or when this process exits and the pipes close.
_tethers: list[subprocess.Popen[bytes]] = []


def confine(confinement: Confinement | None) -> None:
    global _confinement
    _confinement = confinement


@contextlib.contextmanager
def workroom(prefix: str) -> Iterator[Path]:
    """A new empty folder for processes a check starts, removed afterwards: in the grading
    sandbox's scratch folder when this process is confined (so they start in the sandbox)."""
    if _confinement is None:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    scratch = _confinement.scratch
    if scratch is None:
        raise LabEnvError("this grading sandbox offers no scratch folder", "pass scratch= to procs.Confinement")
    scratch.mkdir(exist_ok=True)
    scratch.chmod(0o755)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch))
    folder.chmod(0o755)  # the sandbox's user reads what this process writes here
    try:
        yield folder
    finally:
        # Not removed while the sandbox lives (its user may swap what it was handed for a FIFO
        # or a link under a root rmtree): closed to it, and removed with the sandbox's folder.
        folder.chmod(0o700)


def hand_over(folder: Path, *inside: str) -> None:
    """Let a confined process write in the subfolders ``inside`` of ``folder`` (a workroom), which
    this process just wrote: they and what is in them become the sandbox user's. ``folder`` itself,
    the files directly in it (this process's logs) and its other subfolders stay this process's.
    Never follows a link; never hands over a file with a second name. Call it once, on a tree
    nothing was handed from yet: the walk opens folders the learner cannot have touched."""
    if _confinement is None or _confinement.owner is None or _confined(folder) is None:
        return
    owner, me = _confinement.owner, os.geteuid()

    def give(name: str, dir_fd: int) -> None:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if found.st_uid == me and (stat.S_ISDIR(found.st_mode) or found.st_nlink == 1):
            os.chown(name, owner, owner, dir_fd=dir_fd, follow_symlinks=False)

    top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in inside:
            # Bottom up: a folder changes hands only once all in it has, so nothing the learner's
            # processes put in it meanwhile (a hard link to a file of the grader's, say) is handed over.
            for _, dirs, files, fd in os.fwalk(name, topdown=False, follow_symlinks=False, dir_fd=top):
                for entry in files + dirs:
                    give(entry, fd)
            give(name, top)
    finally:
        os.close(top)


def _confined(cwd: Path | None) -> Confinement | None:
    """The confinement of a process started in ``cwd``: by its path as written or as resolved, so a
    link inside the sandbox's folder to a folder outside it is confined all the same (and a link
    from outside into it too)."""
    if _confinement is None or cwd is None:
        return None
    root = os.path.abspath(_confinement.root)
    for path in (os.path.abspath(cwd), str(Path(cwd).resolve())):
        if path == root or path.startswith(root + os.sep):
            return _confinement
    return None


def tethered(argv: Sequence[str], leash: IO[bytes]) -> int:
    """Run ``argv`` (in a session of its own, output inherited) until it ends, or until ``leash``
    reaches its end: then stop its group (SIGTERM, then SIGKILL). Its exit code. A grading
    sandbox's processes run so (grading/inside.py), tied to the wrapper on the grader's side."""
    child = subprocess.Popen(list(argv), start_new_session=True, stdin=subprocess.DEVNULL)

    def let_go() -> None:
        while leash.read(65536):
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                return
            try:
                child.wait(5)
                return
            except subprocess.TimeoutExpired:
                continue

    threading.Thread(target=let_go, daemon=True).start()
    return child.wait()


CAPTURE_LIMIT = 16 * 2**20  # of each stream: what a check reads of the learner's code, or a sandbox's answer


def capture(
    argv: Sequence[str | os.PathLike[str]], cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd`` to its end; its exit code and output as text (TimeoutExpired after
    ``timeout``), at most CAPTURE_LIMIT bytes of each stream (``run_bounded``). Confined like
    ``spawn``: a check probing the learner's module uses this."""
    confinement = _confined(cwd)
    args = [str(a) for a in argv]
    if confinement is not None:
        wrapped = confinement.wrap(args, env or {}, Path(os.path.abspath(cwd)), False)
        done = run_bounded(wrapped, limit=CAPTURE_LIMIT, timeout=timeout, env=confinement.host_env)
    else:
        full_env = {**os.environ, **(env or {})}
        done = run_bounded(args, limit=CAPTURE_LIMIT, timeout=timeout, env=full_env, cwd=cwd)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached in a new session, stdout and stderr to ``log_path``."""
    return _popen(argv, log_path, env, cwd, subprocess.DEVNULL)


def run(
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    *,
    stdin: bytes,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> int:
    """Run ``argv`` like ``spawn`` to its end, ``stdin`` written to its input; its exit code.
    ``pass_fds``: descriptors it inherits (a lock it must hold as long as it lives).

    Input goes through a pipe, not the environment, so a secret in it is not
    readable from /proc. After ``timeout`` its whole group is killed (exit code -9).
    """
    proc = _popen(argv, log_path, env, cwd, subprocess.PIPE, pass_fds)
    try:
        proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc.pid)
        return -signal.SIGKILL  # kill reaped it: wait() could no longer tell
    except BaseException:  # an interrupt: nothing of it stays running
        kill(proc.pid)
        raise
    return proc.wait()


def run_bounded(
    argv: Sequence[str | os.PathLike[str]],
    *,
    limit: int,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run(argv, capture_output=True)`` that never holds more than ``limit`` bytes of
    either stream: a command whose output passes it is killed (exit code -9) and told so on stderr.
    For output another party can write to, such as a sandbox's answer, which a process of the
    learner's can flood. subprocess.TimeoutExpired after ``timeout``, the command killed."""
    proc = subprocess.Popen(
        [str(a) for a in argv],
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else dict(env),
        cwd=cwd,
    )
    kept: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    over: list[int] = []

    def read(stream: IO[bytes], into: bytearray) -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            if len(into) + len(chunk) > limit:
                over.append(1)
                proc.kill()
                break
            into += chunk
        stream.close()

    def write(stream: IO[bytes], data: bytes) -> None:  # in a thread: a command that never reads must not block us
        with contextlib.suppress(BrokenPipeError, OSError):
            stream.write(data)
            stream.close()

    threads = [
        threading.Thread(target=read, args=(stream, kept[n]), daemon=True)
        for n, stream in ((1, proc.stdout), (2, proc.stderr))
        if stream is not None
    ]
    if input is not None and proc.stdin is not None:
        threads.append(threading.Thread(target=write, args=(proc.stdin, input), daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        code = proc.wait(timeout=timeout)
        for thread in threads:  # a child of the command's that still holds a pipe keeps them open
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    except BaseException:  # its time is up, or an interrupt: the command does not outlive the call
        proc.kill()
        proc.wait()
        raise
    if over:
        kept[2] += f"\nstopped: over {limit} bytes of output".encode()
        code = -signal.SIGKILL
    return subprocess.CompletedProcess(proc.args, code, bytes(kept[1]), bytes(kept[2]))


def piped(argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with pipes to its input and from its output (stderr dropped): a relay,
    such as a port forwarded through `docker exec`, that lives as long as its caller reads it."""
    try:
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    except FileNotFoundError as err:
        raise LabEnvError(f"cannot start {argv[0]}: not found", "run `lab-env setup --containers`") from err


def _popen(
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    stdin: int,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    confinement = _confined(cwd)
    if confinement is not None:  # the learner's code, started by a grader's check: in its sandbox
        argv = confinement.wrap([str(a) for a in argv], env or {}, Path(os.path.abspath(cwd or ".")), True)
        full_env, cwd, stdin = confinement.host_env, None, subprocess.PIPE
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=stdin,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        except FileNotFoundError as err:
            raise LabEnvError(f"cannot start {argv[0]}: not found", "run `lab-env setup`") from err
    if confinement is not None:
        _tethers.append(proc)
    return proc


def alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL whatever is left."""
    try:
        proc = psutil.Process(pid)
        members = _unique([proc, *proc.children(recursive=True), *_group(pid)])
    except psutil.Error:
        _kill_orphaned_group(pid)
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        for p in members:
            _signal(p, signal.SIGTERM)
    left = _wait_gone(members, timeout)
    for p in left:
        _signal(p, signal.SIGKILL)
    _wait_killed(left)


def kill(pid: int) -> None:
    """SIGKILL the process group of ``pid`` at once: a crash, not a shutdown."""
    try:
        # The group only: a child in a session of its own (procs.spawn's) is not signalled, so not waited on.
        members = _unique([psutil.Process(pid), *_group(pid)])
        os.killpg(pid, signal.SIGKILL)
    except psutil.Error:
        _kill_orphaned_group(pid)
        return
    except (ProcessLookupError, PermissionError):
        return
    _wait_killed(members)


def pause(pid: int) -> None:
    """SIGSTOP the process group of ``pid``: it keeps its sockets and memory and does nothing,
    as a machine frozen by a long GC pause or a stalled disk does."""
    if pid <= 0:  # killpg(0) would stop the caller's own group
        raise ValueError(f"no process to pause (pid {pid})")
    os.killpg(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    """SIGCONT what ``pause`` stopped."""
    if pid <= 0:
        raise ValueError(f"no process to resume (pid {pid})")
    os.killpg(pid, signal.SIGCONT)


def _group(pgid: int) -> list[psutil.Process]:
    """The processes of group ``pgid``, including what a dead leader forked (now children of init)."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                found.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _unique(procs: list[psutil.Process]) -> list[psutil.Process]:
    return list({p.pid: p for p in procs}.values())


def _kill_orphaned_group(pgid: int) -> None:
    """The leader is gone but what it forked may live on in its group. A pgid
    is not reused while any member lives, so this reaches only those; returns
    once they are gone (a caller then finds nothing of the group running)."""
    members = _group(pgid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    _wait_killed(members)


# A safety net: a SIGKILLed process is gone in milliseconds, even on a busy machine, unless the kernel
# holds it (state D: a hung disk or mount). Past it the caller would reuse ports that are still bound.
KILLED_PATIENCE_S = 60.0


def _wait_killed(members: list[psutil.Process]) -> None:
    """Wait until SIGKILLed ``members`` are gone; a LabEnvError if any is still there after the safety net."""
    left = _wait_gone(members, KILLED_PATIENCE_S)
    if left:
        pids, which = " ".join(str(p.pid) for p in left), "process" if len(left) == 1 else "processes"
        raise LabEnvError(
            f"{which} {pids} still there {KILLED_PATIENCE_S:.0f} s after SIGKILL",
            f"`ps -o pid,stat,cmd -p {pids}`: state D waits on a disk or a mount; once it is gone, run the cell again",
        )


def _wait_gone(members: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``members`` have exited; those still running after ``timeout``.

    A zombie counts as gone once its threads are: a process another process
    started stays one until its parent reaps it, and psutil.wait_procs would
    wait it out.
    """
    deadline = time.monotonic() + timeout
    left = list(members)
    while left:
        for p in psutil.wait_procs(left, timeout=0)[0]:  # reaps our own children
            left.remove(p)
        left = [p for p in left if alive(p.pid) or _threads_left(p.pid)]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return left


def _threads_left(pid: int) -> bool:
    """``pid`` is a zombie whose other threads have not all exited. Its leader thread is reported a
    zombie as soon as it exits, but the files (listening sockets among them) are closed only when the
    last thread is gone: a killed daprd's ports were seen still accepting connections then."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def port_owner(port: int) -> str | None:
    """'name (pid N)' of the process listening on ``port``, or None if free."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            if c.pid is None:
                return "another user's process"
            try:
                return f"{psutil.Process(c.pid).name()} (pid {c.pid})"
            except psutil.Error:
                return f"pid {c.pid}"
    if not port_is_free(port):
        return "an unknown process"
    return None


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def kill_by_env(name: str, value: str) -> list[int]:
    """SIGKILL every process of this user whose environment has ``name=value``.

    The grader's last sweep: whatever a graded kernel started (apps,
    sidecars, strays that left their process group) inherits its run token.
    """
    me, found = os.getpid(), []
    for proc in psutil.process_iter(["pid", "uids"]):
        try:
            if proc.pid != me and proc.environ().get(name) == value:
                found.append(proc)
        except psutil.Error:
            continue
    for proc in found:
        _signal(proc, signal.SIGKILL)
    _wait_gone(found, KILLED_PATIENCE_S)  # the grader's last sweep, in a finally: a raise would lose the grade
    return [p.pid for p in found]
