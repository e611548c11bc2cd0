"""The one exception type lab-env raises for problems a user can fix."""

from __future__ import annotations


class LabEnvError(RuntimeError):
    """A failure with a one-line explanation and what to do about it.

    The CLI prints ``str(err)`` and exits non-zero instead of a traceback;
    in a notebook IPython shows the same single line.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} -> {fix}" if fix else problem)

    def _render_traceback_(self) -> list[str]:
        return [f"\u274c {self}"]
