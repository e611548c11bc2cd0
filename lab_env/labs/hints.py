"""Hints in levels: the stub shows the first, ``hint(lab, n)`` the next.

Each exercise's hints go from the idea to the code: the first says what the
exercise is about and what to aim for, later ones name the API or the shape
of the answer, and only the last may show code. They come from the solution
notebook's ``### HINT:`` lines, through labs/hints.json (``lab-env build-labs``).

The progress record keeps the deepest level revealed per exercise, so the
course overview and ``lab-env progress`` show it; the notebook's output shows
it too (the printed line names the level).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from lab_env.errors import LabEnvError

HINTS_NAME = "hints.json"  # in labs/: every exercise's hint levels, for hint() and `lab-env hint`


def hint_call(lab: str, exercise: int) -> str:
    """The call that shows the next hint of a stub: what its "Stuck?" line names."""
    return f'hint("{lab}", {exercise})'


@cache
def _table() -> dict[str, dict[str, list[str]]]:
    from lab_env.core.paths import REPO_ROOT

    path = REPO_ROOT / "labs" / HINTS_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise LabEnvError(f"no hints at {path}", "run `lab-env build-labs`") from None


def levels(lab: str, exercise: int) -> list[str]:
    found = _table().get(lab, {}).get(str(exercise))
    if not found:
        exercises = ", ".join(_table().get(lab, {})) or "none"
        raise LabEnvError(
            f"lab {lab} has no hints numbered {exercise}", f"numbers with hints in lab {lab}: {exercises}"
        )
    return found


def reveal(lab: str, exercise: int, level: int | None = None) -> tuple[int, int, str]:
    """(level, how many levels, its text): ``level``, or the one after the deepest revealed so far."""
    from lab_env.labs.course import hints_revealed, record_hint

    texts = levels(lab, exercise)
    if level is None:
        level = min(len(texts), hints_revealed().get(lab, {}).get(str(exercise), 1) + 1)
    if not 1 <= level <= len(texts):
        raise LabEnvError(f"{hint_call(lab, exercise)} has hints 1 to {len(texts)}", f"ask for 1 to {len(texts)}")
    record_hint(lab, exercise, level)
    return level, len(texts), texts[level - 1]


def hint(lab: str, exercise: int, level: int | None = None) -> None:
    """Print the next hint of exercise ``exercise`` of lab ``lab`` (or hint ``level``)."""
    shown, total, text = reveal(lab, exercise, level)
    call = hint_call(lab, exercise)
    last = ", the last one" if shown == total else f"; {call} again for the next"
    print(f"Hint {shown} of {total} ({call}{last}):\n  {text}")


# -- does a hint give the answer away? ---------------------------------------------------------

LEAK_CHARS = 40  # a run of the answer's code this long, whitespace aside, is the answer
LEAK_SHARE = 0.5  # or half of a short answer (at least LEAK_MIN characters of it)
LEAK_MIN = 16


def gives_away(hint: str, solution: str) -> bool:
    """Whether ``hint`` contains the answer's code: the longest run of characters it shares with the
    solution region (whitespace removed from both) is LEAK_CHARS long, or half of a short answer."""
    from difflib import SequenceMatcher

    h, s = "".join(hint.split()), "".join(solution.split())
    if not h or not s:
        return False
    shared = SequenceMatcher(None, h, s, autojunk=False).find_longest_match(0, len(h), 0, len(s)).size
    return shared >= min(LEAK_CHARS, max(LEAK_MIN, LEAK_SHARE * len(s)))


# -- what a handed-in notebook shows -------------------------------------------------------------

_SHOWN = re.compile(r'^Hint (?P<level>\d+) of (?P<total>\d+) \(hint\("(?P<lab>\d\d)", (?P<exercise>\d+)\)', re.M)


def asked_for(nb: Any, lab: str) -> dict[int, tuple[int, int]]:
    """{exercise: (deepest level, levels)} from the hint() lines in a notebook's outputs: what the
    learner asked for and kept. A learner can clear outputs, so this informs; it proves nothing."""
    seen: dict[int, tuple[int, int]] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            text = output.get("text", "")
            for m in _SHOWN.finditer(text if isinstance(text, str) else "".join(text)):
                if m["lab"] == lab:
                    exercise, level, total = int(m["exercise"]), int(m["level"]), int(m["total"])
                    if level > seen.get(exercise, (0, total))[0]:
                        seen[exercise] = (level, total)
    return seen
