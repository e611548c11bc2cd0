"""The capstone's validation-suite check fails on the suites a learner may
write that miss a bug or refuse correct code, each with its own message,
against candidates running on live hosts. Each wrong suite is the solution's
own ``problems`` with one probe taken out or spoiled."""

from __future__ import annotations

from collections.abc import Callable

import nbformat
import pytest

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.labs.lab07_capstone import checks as lab07
from lab_env.models import trial
from tests.grading.solution_mutations import rejected

pytestmark = pytest.mark.stack
SOLUTION = SOLUTIONS_DIR / "07_capstone.ipynb"


def suite(*edits: tuple[str, str]) -> Callable[[str], list[str]]:
    """The solution's ``problems`` with each (old, new) edit made."""
    cells = nbformat.read(SOLUTION, as_version=4).cells
    source = next(cell.source for cell in cells if cell.source.startswith("def problems(host"))
    for old, new in edits:
        assert source.count(old) == 1, f"problems must contain {old!r} once: update this test"
        source = source.replace(old, new)
    namespace: dict = {"trial": trial}
    exec(compile(source, "problems", "exec"), namespace)
    return namespace["problems"]


WRONG = {
    "never restarts the host": (
        [("    trial.restart(host)\n", "")],
        "accepts the candidate 'unsaved'",
    ),
    "never retries": (
        [("for _ in range(2):", "for _ in range(1):")],
        "accepts the candidate 'double-reserve'",
    ),
    "never retries Release": (
        [('    trial.call(host, "bed", "Release", "o-3")  # a retry\n', "")],
        "accepts the candidate 'double-release'",
    ),
    "probes products another probe changed": (
        [('trial.call(host, "desk", "Stock")', 'trial.call(host, "lamp", "Stock")')],
        "in the candidate that meets the specification",
    ),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_suite_that_misses_a_bug_or_refuses_correct_code_fails(wrong):
    edits, because = WRONG[wrong]
    rejected(lab07.validation_suite, suite(*edits), because=because)
