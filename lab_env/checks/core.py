"""The check decorator and the failure every check raises."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from ..errors import LabEnvError

P = ParamSpec("P")
T = TypeVar("T")


class CheckFailed(AssertionError):
    """An exercise is not right yet. ``str()`` is the one line a learner reads."""

    def __init__(self, check: str, problem: str, hint: str | None = None) -> None:
        self.check, self.problem, self.hint = check, problem, hint
        super().__init__(f"{check}: {problem}" + (f" Hint: {hint}" if hint else ""))

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback.
        lines = [f"\u274c {self.check}: {self.problem}"]
        if self.hint:
            lines.append(f"   Hint: {self.hint}")
        return lines


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
                raise _as_failure(name, hint, err) from None
            _passed(name, detail)

        return run

    return decorate


def _passed(name: str, detail: str | None) -> None:
    print(f"\u2705 {name}: passed" + (f" ({detail})" if detail else ""))


def _as_failure(name: str, hint: str, err: Exception) -> CheckFailed:
    if isinstance(err, CheckFailed):
        return err
    if isinstance(err, AssertionError):
        return CheckFailed(name, str(err) or "the result is not right", hint)
    if isinstance(err, LabEnvError):
        return CheckFailed(name, err.problem, err.fix or hint)
    if _not_done(err):
        return CheckFailed(name, "not done yet: replace `raise NotImplementedError` with your code", hint)
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
        raise AssertionError(f"{what} did not finish within {timeout:.0f} s (an endless loop, or a call that never returns?)")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
