"""The error family: every failure a learner or instructor reads derives from LabEnvError.

Each says in one line what is wrong and what to do. The CLI prints ``str(err)``
and exits non-zero; a notebook shows ``err.lines()`` instead of a traceback
(IPython calls ``_render_traceback_``, defined here once).
"""

from __future__ import annotations


class LabEnvError(RuntimeError):
    """A failure with a one-line explanation and what to do about it."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} -> {fix}" if fix else problem)

    def lines(self) -> list[str]:
        """What a notebook shows in place of the traceback."""
        return [f"\u274c {self}"]

    def _render_traceback_(self) -> list[str]:
        return self.lines()
