"""The check decorator and the failure every check raises."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import secrets
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from lab_env.errors import LabEnvError

P = ParamSpec("P")
T = TypeVar("T")


class CheckFailed(LabEnvError, AssertionError):
    """An exercise is not right yet. ``str()`` is the one line a learner reads.

    An AssertionError too, so nbval and pytest report it as a failed check."""

    def __init__(self, check: str, problem: str, hint: str | None = None) -> None:
        super().__init__(problem, hint)
        self.check, self.hint = check, hint
        self.args = (f"{check}: {problem}" + (f" Hint: {hint}" if hint else ""),)

    def lines(self) -> list[str]:
        return [f"\u274c {self.check}: {self.problem}"] + ([f"   Hint: {self.hint}"] if self.hint else [])


def fresh(prefix: str = "") -> str:
    """A name no earlier run of a check used: ``prefix-3f9a1c`` (or the six hex digits alone)."""
    token = secrets.token_hex(3)
    return f"{prefix}-{token}" if prefix else token


def _not_done(err: BaseException) -> bool:
    return isinstance(err, NotImplementedError) or "NotImplementedError" in str(err)


def check(name: str, hint: str) -> Callable[[Callable[P, str | None]], Callable[P, None]]:
    """Turn a function that raises on a wrong answer into a lab check.

    Inside, ``assert cond, "what is wrong"`` is enough; the decorator turns
    assertion failures, unfinished stubs (NotImplementedError, also from an
    app process) and lab-env errors into one CheckFailed with ``hint``.
    The function may return a short, deterministic detail for the pass line.
    Checks are synchronous: a learner's coroutine goes through run_coroutine.
    """

    def decorate(fn: Callable[P, str | None]) -> Callable[P, None]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                detail = fn(*args, **kwargs)
            except Exception as err:
                _record(fn, passed=False)
                raise _as_failure(name, hint, err, args) from None
            _record(fn, passed=True)
            print(_pass_line(name, detail))

        run.check_name, run.check_hint = name, hint  # type: ignore[attr-defined]  # read by verdict()
        return run

    return decorate


def _record(fn: Callable[..., object], passed: bool) -> None:
    """The learner's progress record (lab_env.labs.course); verdict(), the grader's path, never writes it.

    A kernel that runs a lab's check also keeps its run token with that lab, so `lab-env reset NN`
    finds what the run made (importing a lab's checks is not enough: the overview imports them all)."""
    from lab_env.core.names import run_token
    from lab_env.labs.course import lab_of_module, record, record_run

    lab = lab_of_module(fn.__module__)
    if lab:
        record(lab, fn.__name__, passed)
        if "ipykernel" in sys.modules and os.environ.get("LAB_ENV_GRADING") != "1":
            record_run(lab, run_token())


def _pass_line(name: str, detail: str | None) -> str:
    return f"\u2705 {name}: passed" + (f" ({detail})" if detail else "")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str  # "<check>: <what is wrong>", or the pass line's text
    hint: str = ""


def verdict(check_fn: Callable[..., None], *args: Any, **kwargs: Any) -> Verdict:
    """Run a check and return its outcome as a value (what the grader records).

    Nothing is printed and nothing is raised for a wrong answer. Exceptions
    that are not ``Exception`` (the grader's KernelDied, KeyboardInterrupt)
    pass through.
    """
    name, hint = check_fn.check_name, check_fn.check_hint  # type: ignore[attr-defined]
    try:
        detail = check_fn.__wrapped__(*args, **kwargs)  # type: ignore[attr-defined]
    except Exception as err:
        failure = _as_failure(name, hint, err, args)
        return Verdict(False, f"{failure.check}: {failure.problem}", failure.hint or "")
    return Verdict(True, _pass_line(name, detail).removeprefix("\u2705 "))


def _outdated(args: tuple[Any, ...]) -> list[tuple[str, str]]:
    """Outdated programs among the apps the check was given (an error from the kernel's own code names none)."""
    from lab_env.notebooks.workspace import outdated_programs, workspace
    from lab_env.runtime.apps import DaprApp

    apps = [a.app_id for a in args if isinstance(a, DaprApp)]
    return outdated_programs(workspace(), apps) if apps else []


def _as_failure(name: str, hint: str, err: Exception, args: tuple[Any, ...] = ()) -> CheckFailed:
    if isinstance(err, CheckFailed):
        return err
    if isinstance(err, AssertionError):
        return CheckFailed(name, str(err) or "the result is not right", hint)
    if _not_done(err):  # also when it comes back wrapped, in an ActorCallFailed or a WorkflowFailed
        outdated = _outdated(args)
        if outdated:  # the stub is gone from the file, but the running app started before it was saved
            program, file = outdated[0]
            return CheckFailed(
                name,
                f"{program} still runs the {file} it started with, not the one you saved since",
                "run the cell that starts it again, then this check",
            )
        return CheckFailed(name, "not done yet: replace `raise NotImplementedError` with your code", hint)
    if isinstance(err, LabEnvError):
        return CheckFailed(name, err.problem, err.fix or hint)
    # the learner's code failed: say so, briefly
    return CheckFailed(name, f"your code raised {type(err).__name__}: {str(err)[:200]}", hint)


def run_coroutine(coro: Awaitable[T], timeout: float, what: str) -> T:
    """Run a learner's coroutine from a (synchronous) check, with a time limit.

    Jupyter's own event loop is busy running the cell, so the coroutine runs
    on a fresh loop in a daemon thread. An endless loop in it fails the check
    after ``timeout`` seconds instead of hanging the cell: interrupting a
    cell that awaits kills the kernel under nbval, a blocked wait does not.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    worker = threading.Thread(target=target, daemon=True, name=f"check-{what}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AssertionError(
            f"{what} did not finish within {timeout:.0f} s (an endless loop, or a call that never returns?)"
        )
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def call_learner(fn: Callable[..., Any], *args: Any, timeout: float, what: str) -> Any:
    """Call a learner's function (sync or async) from a check, with a time limit.

    When grading, ``fn`` stands for a function in the graded kernel and
    carries its own way to be called there (``call_in_kernel``).
    """
    in_kernel = getattr(fn, "call_in_kernel", None)
    if in_kernel is not None:
        return in_kernel(args, timeout=timeout, what=what)
    result = fn(*args)
    if inspect.isawaitable(result):
        return run_coroutine(result, timeout, what)
    return result
