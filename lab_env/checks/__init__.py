"""Check functions called by the labs' check cells.

Each check prints one line starting with a tick when the exercise is right,
or raises CheckFailed whose one-line message says what is wrong and how to
fix it. Jupyter shows that line instead of a traceback.
"""

from .core import CheckFailed, check

__all__ = ["CheckFailed", "check"]
