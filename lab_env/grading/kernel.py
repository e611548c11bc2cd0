"""A Jupyter kernel the grader drives one cell at a time.

The grader never reads a verdict from the kernel: it only runs cells, and
asks for values through ``remote``. A cell that runs past its time limit is
interrupted; a kernel that dies (``os._exit``, a restart, a crash) raises
KernelDied, which the grader handles (see worker.py).
"""

from __future__ import annotations

import ast
import json
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from lab_env.grading.execute import this_python_kernel_spec
from lab_env.grading.sandbox import Sandbox
from lab_env.stack.engine import Engine

_REMOTE = "__import__('lab_env.grading.remote', fromlist=['remote'])"


class _SandboxKernelManager(KernelManager):
    """Hands the connection file to the sandbox's uid each time it is written (it is written more than once)."""

    owner = -1

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        os.chown(self.connection_file, self.owner, self.owner, follow_symlinks=False)


class KernelDied(BaseException):
    """The graded kernel is gone. A BaseException, so that no check's
    ``except Exception`` mistakes it for a wrong answer."""


@dataclass
class CellRun:
    status: str  # "ok", "error" or "timeout"
    error: str = ""  # "Name: message" of the cell's exception
    seconds: float = 0.0
    user_expressions: dict[str, Any] | None = None


class GradingKernel:
    # A kernel that dies before its first reply ran no learner code yet, so it is started again.
    # Seen once in a full suite (issue 26: lab 03's graded solution, "Kernel died before replying
    # to kernel_info"); likely cause: jupyter_client picks five free ports and another process
    # binds one before the kernel does.
    START_ATTEMPTS = 3

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        startup_timeout: float = 120,
        sandbox: tuple[Sandbox, Engine] | None = None,
    ) -> None:
        """A kernel in ``cwd`` with ``env``; with ``sandbox``, in that container (which gets only its own
        environment: ``env`` is then the docker CLI's)."""
        self.sandbox = sandbox
        for attempt in range(1, self.START_ATTEMPTS + 1):
            if sandbox is None:
                self.km = KernelManager(kernel_name="python3")
                self.km._kernel_spec = this_python_kernel_spec()
            else:
                self._into(*sandbox)
            self.km.start_kernel(cwd=str(cwd), env=env)
            self.kc = self.km.client()
            self.kc.start_channels()
            try:
                self.kc.wait_for_ready(timeout=startup_timeout)
                return
            except RuntimeError as err:
                self.shutdown()
                if attempt == self.START_ATTEMPTS:
                    raise KernelDied(f"the kernel did not start ({attempt} attempts): {err}") from None

    def _into(self, box: Sandbox, engine: Engine) -> None:
        """Launch the kernel with `docker run`: its connection file written first and handed to the
        sandbox's uid (it holds only this kernel's HMAC key), on 127.0.0.1 (the host's loopback)."""
        box.remove(engine)  # a kernel of an earlier attempt or run
        self.km = _SandboxKernelManager(kernel_name="python3", connection_file=str(box.connection_file))
        self.km.ip, self.km.owner = "127.0.0.1", box.uid
        argv = box.run_argv(Path("{connection_file}"))
        self.km._kernel_spec = KernelSpec(argv=argv, display_name="sandbox", language="python")

    def run(self, code: str, timeout: float, user_expressions: dict[str, str] | None = None) -> CellRun:
        """Execute ``code``; on ``timeout`` interrupt it. Raises KernelDied."""
        started = time.monotonic()
        msg_id = self.kc.execute(code, user_expressions=user_expressions or {}, allow_stdin=False, stop_on_error=False)
        deadline = started + timeout
        interrupted = False
        while True:
            self._drain_iopub()
            now = time.monotonic()
            if now >= deadline:
                if interrupted:  # no answer to the interrupt either
                    self.shutdown()
                    raise KernelDied(f"the kernel did not answer an interrupt after {timeout:.0f} s")
                self.km.interrupt_kernel()
                interrupted, deadline = True, now + 20
            try:
                msg = self.kc.get_shell_msg(timeout=min(0.5, max(0.01, deadline - now)))
            except queue.Empty:
                if not self.km.is_alive():
                    raise KernelDied("the kernel exited") from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            seconds = time.monotonic() - started
            if interrupted:
                return CellRun("timeout", f"interrupted after {timeout:.0f} s", seconds)
            if content.get("status") == "ok":
                return CellRun("ok", "", seconds, content.get("user_expressions", {}))
            error = f"{content.get('ename', 'Error')}: {str(content.get('evalue', ''))[:300]}"
            return CellRun("error", error, seconds, content.get("user_expressions", {}))

    def value(self, expression: str, timeout: float = 120) -> dict[str, Any]:
        """``remote.describe(expression)`` evaluated in the kernel, as a dict."""
        run = self.run("", timeout, {"v": f"{_REMOTE}.describe({expression})"})
        return _json_expression(run, "v", expression)

    def call(self, function: str, args: list[Any], timeout: float) -> CellRun:
        """Call the kernel's ``function(*args)``; the result is in ``.user_expressions['r']``."""
        slot = f"_lab_env_result_{int(time.monotonic() * 1e6)}"
        code = f"{slot} = await {_REMOTE}.call({function}, {json.dumps(json.dumps(args))})"
        run = self.run(code, timeout, {"r": slot})
        if run.status == "ok":
            run.user_expressions = {"r": _json_expression(run, "r", function)}
        return run

    def _drain_iopub(self) -> None:
        # Outputs are not used for grading; drained so they do not pile up.
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            try:
                if self.km.has_kernel:
                    self.km.shutdown_kernel(now=True)
            finally:
                if self.sandbox is not None:  # killing `docker run` leaves its container running
                    self.sandbox[0].remove(self.sandbox[1])


def _json_expression(run: CellRun, key: str, what: str) -> Any:
    if run.status != "ok":
        raise ValueError(f"{what}: {run.error}")
    found = (run.user_expressions or {}).get(key, {})
    if found.get("status") != "ok":
        raise ValueError(f"{what}: {found.get('ename', 'Error')}: {str(found.get('evalue', ''))[:200]}")
    try:
        return json.loads(ast.literal_eval(found["data"]["text/plain"]))
    except (KeyError, ValueError, SyntaxError, TypeError):
        raise ValueError(f"{what}: the kernel's answer is not what lab_env sends") from None
