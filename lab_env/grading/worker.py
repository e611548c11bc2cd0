"""Grade one assembled notebook: ``python -m lab_env.grading.worker`` (run.py starts it).

The worker starts a kernel, runs the notebook's cells in it one by one, and
evaluates each check cell **in its own process**: it reads the check call
(``check.name(args)``) from the instructor's cell, asks the kernel only what
the arguments are (an app id, a path, a value, a function to call), and runs
the check function from the grader's own lab_env against the live stack.
So no hook, module, built-in, output or reply status in the kernel can make
a check pass.

If a learner's cell kills the kernel, that answer is graded as not done and
the notebook runs again from the top; a check whose call killed it fails.
Verdicts already reached are kept, so every re-run decides something new.

It reads its job (JSON, with a signing key) from stdin, and writes its
results, HMAC-signed, to results.json after every verdict.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from lab_env.core import procs
from lab_env.errors import LabEnvError
from lab_env.grading.assemble import DEMO, ROLE
from lab_env.grading.kernel import GradingKernel, KernelDied
from lab_env.grading.sandbox import Sandbox, ensure_image, port_window
from lab_env.grading.sandbox_handles import (
    sandboxed_app,
    sandboxed_apps,
    sandboxed_cluster,
    sandboxed_market,
    sandboxed_native_cluster,
)
from lab_env.grading.signing import sign
from lab_env.grading.trial_desk import TrialDesk
from lab_env.labs.checks import Verdict, verdict
from lab_env.runtime.apps import is_app_id, kill_run, list_apps_of_runs_with, load_app, run_token
from lab_env.runtime.clusters import native as native_cluster
from lab_env.runtime.kafka.replicated import load_cluster
from lab_env.stack.engine import Engine


@dataclass
class Decided:
    passed: bool
    message: str
    hint: str = ""


@dataclass
class State:
    checks: dict[str, Decided] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stubbed: list[int] = field(default_factory=list)  # cells graded as not done after they killed the kernel
    finished: bool = False


def kernel_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The graded kernel's environment: the grader's, without any OPENAI_* (a graded notebook must not
    spend the instructor's model key, nor read it), with LAB_ENV_GRADING (cells that would start
    containers for the learner to watch skip: lab 05) and a plotting backend that draws no window."""
    inherited = {k: v for k, v in environ.items() if not k.startswith("OPENAI_")}
    return {**inherited, "MPLBACKEND": "agg", "LAB_ENV_GRADING": "1"}


class KernelFunction:
    """A learner's function that lives in the graded kernel; checks call it
    through checks.core.call_learner."""

    def __init__(self, kernel: GradingKernel, expression: str) -> None:
        self.kernel, self.expression = kernel, expression

    def call_in_kernel(self, args: tuple, timeout: float, what: str) -> Any:
        run = self.kernel.call(self.expression, list(args), timeout)
        if run.status == "timeout":
            raise AssertionError(
                f"{what} did not finish within {timeout:.0f} s (an endless loop, or a call that never returns?)"
            )
        if run.status == "error":
            raise RuntimeError(run.error)  # "NotImplementedError: ..." reads as not done
        return (run.user_expressions or {})["r"]


def _keep_cluster_manifests() -> None:
    """Lab 05's cluster starts in the sandbox, which reads the cache and has no Go: the manifests
    it applies are copied into the cache here first (a cache built before they were kept there).
    Never a reason to fail: without them, the cluster says so when the notebook starts it."""
    from lab_env.stack.provision import kube

    try:
        if kube.kube_installed():
            for name in kube.MANIFESTS:
                kube.manifests(name)
    except Exception as err:
        print(f"the cluster's manifests are not in the cache: {type(err).__name__}: {err}", flush=True)


class Grader:
    def __init__(self, job: dict[str, Any], key: bytes) -> None:
        self.job, self.key = job, key
        self.workdir = Path(job["workdir"])
        self.notebook = nbformat.read(self.workdir / job["notebook"], as_version=4)
        self.checks = importlib.import_module(job["check_module"])
        self.cell_timeout, self.deadline = float(job["cell_timeout"]), time.monotonic() + float(job["timeout"])
        self.state = State()
        self.token = run_token()
        self.engine: Engine | None = None
        self.box: Sandbox | None = None
        self.desk: TrialDesk | None = None
        self.runs = 0  # kernels started so far (a kernel that dies mid-notebook means another run)
        if job.get("sandbox"):  # the kernel runs in a container; see sandbox.py
            self.engine = Engine(job["sandbox"]["host"], job["sandbox"]["managed"])
            slot = int(job["slot"])  # leased by the batch; this process holds its lock too (run.py)
            self.desk = TrialDesk()  # lab 07's candidate hosts, which the worker runs, reached from the kernel
            desk_env = tuple(self.desk.env().items())
            self.box = Sandbox(
                f"lab-env-grade-{self.token}", self.workdir / "box", slot, self.token, extra_env=desk_env
            )
            os.environ["LAB_ENV_PORT_WINDOW"] = port_window(slot, worker=True)  # what the checks start here
            ensure_image(self.engine)
            if "lab05" in str(job.get("check_module", "")):
                _keep_cluster_manifests()
            box, engine = self.box, self.engine
            list_apps_of_runs_with(lambda token: sandboxed_apps(box, engine, token))
            from lab_env.marketplace.market import control  # here: a second of imports the rest never needs

            control.attach_markets_with(lambda name: sandboxed_market(box, engine, name))  # lab 07's
            native_cluster.attach_clusters_with(lambda name: sandboxed_native_cluster(box, engine, name))  # 05's
            procs.confine(box.confinement(engine))  # the learner's modules a check starts run in there too
        # The checks' workspace() in this process is the graded kernel's.
        os.environ["LAB_ENV_WORKSPACE"] = str(self.workspace)

    @property
    def workspace(self) -> Path:
        return self.box.workspace if self.box else self.workdir / "workspace"

    def save(self) -> None:
        path = self.workdir / "results.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sign(asdict(self.state), self.key)))
        tmp.replace(path)

    def grade(self) -> None:
        try:
            while not self.state.finished:
                self._clean()
                self.runs += 1
                if not self._run_once(first=self.runs == 1):
                    break
            self.state.finished = True
            self._clean()
        finally:
            if self.desk is not None:
                self.desk.close()
        self.save()

    def _clean(self) -> None:
        # SIGKILL, not a graceful stop: nothing of the run is needed any more,
        # and stopping apps with thousands of active actors takes long.
        if self.box is not None and self.engine is not None:
            gone = False
            try:
                # The kernel and everything it started, gone with their namespace; then (no process of
                # the learner's left) the apps' logs of the run that ended, kept beside the worker's own.
                gone = self.box.remove(self.engine)
                if gone:
                    self.box.keep_logs(self.workdir / "sandbox-logs" / f"run-{self.runs}")
                else:
                    print("the engine did not confirm the sandbox gone: its apps' logs are not kept", flush=True)
            except LabEnvError as err:  # grade.py's last resort (kill_run) still reaps it
                print(f"removing the sandbox failed: {err}", flush=True)
            kill_run(self.token)  # what the checks started here for this run
            if gone:  # a root rmtree under a process of the learner's could be handed a FIFO or a link
                self.box.prepare()
            return
        kill_run(self.token)
        shutil.rmtree(self.workspace, ignore_errors=True)
        self.workspace.mkdir()

    def _kernel(self) -> GradingKernel:
        started = time.monotonic()
        if self.box is not None and self.engine is not None:
            docker_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": self.engine.host}
            kernel = GradingKernel(self.workspace, docker_env, sandbox=(self.box, self.engine))
        else:
            kernel = GradingKernel(self.workspace, kernel_env(os.environ))
        _log("kernel start", started)
        return kernel

    def _run_once(self, first: bool) -> bool:
        """One pass over the notebook. True if it must run again (the kernel died)."""
        try:
            kernel = self._kernel()
        except KernelDied as died:
            self._fail_rest(f"not run: {died}")
            return False
        try:
            last_check = max(
                (i for i, c in enumerate(self.notebook.cells) if c.metadata.get(ROLE, {}).get("role") == "check"),
                default=-1,
            )
            for index, cell in enumerate(self.notebook.cells):
                if index > last_check:
                    break  # later cells (clean-up) cannot change a verdict
                if cell.cell_type != "code":
                    continue
                if time.monotonic() > self.deadline:
                    self._fail_rest(f"not reached: the notebook ran longer than {self.job['timeout']} s")
                    return False
                role = cell.metadata.get(ROLE, {})
                if role.get("role") == DEMO:
                    continue  # teaches in the learner's kernel; decides no verdict
                if role.get("role") == "check":
                    started = time.monotonic()
                    try:
                        self._check(kernel, cell)
                        _log(f"check {cell.metadata['lab_env']['check']}", started)
                    except KernelDied:
                        return True  # the check is decided (failed); run again for the rest
                    continue
                source = role["stub_source"] if index in self.state.stubbed else cell.source
                try:
                    run = kernel.run(source, min(self.cell_timeout, max(1.0, self.deadline - time.monotonic())))
                except KernelDied as died:
                    return self._died_in_cell(index, role, str(died))
                _log(
                    f"cell {index} {run.status}" + (f": {str(run.error)[:300]}" if run.status == "error" else ""),
                    time.monotonic() - run.seconds,
                )
                if run.status == "timeout" and first:
                    self.state.notes.append(
                        f"{role.get('label') or f'code cell {index}'} was stopped after "
                        f"{self.cell_timeout:.0f} s (an endless loop?)"
                    )
            self.state.finished = True
            return False
        finally:
            kernel.shutdown()

    def _died_in_cell(self, index: int, role: dict, why: str) -> bool:
        if role.get("role") == "exercise" and index not in self.state.stubbed:
            self.state.stubbed.append(index)
            self.state.notes.append(
                f"{role['label']} stopped the notebook's kernel ({why}); that answer was graded as "
                "not done and the notebook was run again"
            )
        else:  # an instructor cell: whatever killed the kernel earlier costs the next check
            pending = self._pending()
            if not pending:
                return False
            self._decide(
                pending[0],
                Decided(
                    False,
                    f"{pending[0]}: not run: the notebook's kernel died ({why})",
                    "make sure no cell stops the kernel",
                ),
            )
            self.state.notes.append(f"the kernel died in code cell {index} ({why}); the notebook was run again")
        self.save()
        return True

    def _pending(self) -> list[str]:
        names = [
            c.metadata["lab_env"]["check"]
            for c in self.notebook.cells
            if c.metadata.get(ROLE, {}).get("role") == "check"
        ]
        return [n for n in names if n not in self.state.checks]

    def _fail_rest(self, message: str) -> None:
        for name in self._pending():
            self._decide(name, Decided(False, f"{name}: {message}"))

    def _decide(self, name: str, decided: Decided) -> None:
        self.state.checks[name] = decided
        self.save()

    def _check(self, kernel: GradingKernel, cell: nbformat.NotebookNode) -> None:
        meta = cell.metadata["lab_env"]
        name = meta["check"]
        if name in self.state.checks:
            return
        try:
            fn_name, args = self._resolve(kernel, cell.source)
        except KernelDied as died:
            self._decide(name, Decided(False, f"{name}: not run: the notebook's kernel died ({died})"))
            raise
        except ValueError as err:
            self._decide(
                name,
                Decided(
                    False,
                    f"{name}: the check could not run: {str(err)[:200]}",
                    "run the notebook top to bottom and fix the first error",
                ),
            )
            return
        check_fn = getattr(self.checks, fn_name)
        try:
            result: Verdict = verdict(check_fn, *args, **meta.get("grading_kwargs", {}))
        except KernelDied as died:
            self._decide(
                name,
                Decided(
                    False,
                    f"{check_fn.check_name}: your code stopped the notebook's kernel ({died})",
                    "make sure your function returns",
                ),
            )
            raise
        self._decide(name, Decided(result.passed, result.message, result.hint))

    def _resolve(self, kernel: GradingKernel, source: str) -> tuple[str, list[Any]]:
        """The check function's name and its arguments, resolved against the stack."""
        call = _check_call(source)
        args: list[Any] = []
        for node in call.args:
            if isinstance(node, ast.Constant):
                args.append(node.value)
                continue
            expression = ast.unparse(node)
            described = kernel.value(expression)
            kind = described.get("kind")
            if kind == "app":
                app_id = str(described.get("app_id"))
                if not is_app_id(app_id) or not app_id.endswith(f"-{self.token}"):
                    raise ValueError(f"{expression} is not an app this notebook started")
                try:
                    args.append(self._app(app_id))
                except Exception:
                    raise ValueError(f"{expression} ({app_id}) is not running") from None
            elif kind == "kafka_cluster":
                name = str(described.get("name"))
                if not is_app_id(name) or not name.endswith(f"-{self.token}"):
                    raise ValueError(f"{expression} is not a cluster this notebook started")
                try:
                    args.append(self._cluster(name))
                except Exception:
                    raise ValueError(f"{expression} ({name}) is not running") from None
            elif kind == "path":
                path = Path(described["path"]).resolve()
                if not path.is_relative_to(self.workspace.resolve()):
                    raise ValueError(f"{expression} is not in the lab workspace")
                args.append(path)
            elif kind == "function":
                args.append(KernelFunction(kernel, expression))
            elif kind == "json":
                args.append(described["value"])
            else:
                raise ValueError(f"{expression} is a {described.get('type')}, which the check cannot use")
        return call.func.attr, args  # type: ignore[attr-defined]

    def _app(self, app_id: str) -> Any:
        if self.box is not None and self.engine is not None:
            return sandboxed_app(self.box, self.engine, app_id)
        return load_app(app_id)

    def _cluster(self, name: str) -> Any:
        if self.box is not None and self.engine is not None:
            return sandboxed_cluster(self.box, self.engine, name)
        return load_cluster(name)


def _log(what: str, started: float) -> None:
    # worker.log: where a graded run spends its time
    print(f"{time.monotonic() - started:7.2f}s  {what}", flush=True)


def _check_call(source: str) -> ast.Call:
    """``check.name(args)``: the one call an instructor's check cell makes."""
    body = ast.parse(source).body
    call = body[-1].value if body and isinstance(body[-1], ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        raise ValueError(f"not a check call: {source[:80]!r}")
    return call


def main() -> None:
    job = json.loads(sys.stdin.readline())
    key = bytes.fromhex(job.pop("key"))
    sys.stdin.close()
    Grader(job, key).grade()


if __name__ == "__main__":
    main()
