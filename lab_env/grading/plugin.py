"""pytest plugin loaded into each grading run: records every cell's outcome.

Writes a JSON list to $LAB_ENV_GRADE_RESULTS: nodeid, outcome and the failure
text nbval reported (the check's one-line message is in there).
"""

from __future__ import annotations

import json
import os

_results: list[dict[str, str]] = []


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" or report.failed:
        _results.append({"nodeid": report.nodeid, "outcome": report.outcome, "text": report.longreprtext})


def pytest_sessionfinish(session) -> None:
    path = os.environ.get("LAB_ENV_GRADE_RESULTS")
    if path:
        with open(path, "w") as f:
            json.dump(_results, f)
