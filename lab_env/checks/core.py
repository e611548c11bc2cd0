"""The check decorator and the failure every check raises."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

from ..errors import LabEnvError

P = ParamSpec("P")


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
    """

    def decorate(fn: Callable[P, str | None]) -> Callable[P, None]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                detail = fn(*args, **kwargs)
            except CheckFailed:
                raise
            except AssertionError as err:
                raise CheckFailed(name, str(err) or "the result is not right", hint) from None
            except LabEnvError as err:
                raise CheckFailed(name, err.problem, err.fix or hint) from None
            except Exception as err:  # the learner's code failed: say so, briefly
                if _not_done(err):
                    raise CheckFailed(name, "not done yet: replace `raise NotImplementedError` with your code", hint) from None
                raise CheckFailed(name, f"your code raised {type(err).__name__}: {str(err)[:200]}", hint) from None
            print(f"\u2705 {name}: passed" + (f" ({detail})" if detail else ""))

        return run

    return decorate
