"""The `ours` fixture: lab-env's own Docker engine for the tests marked `containers`.

They use a real dockerd (as root, where `lab-env setup --containers` installed it)
and run only with LAB_ENV_CONTAINERS=1, which tests/run_suite.py sets for the full
tier (`make test`): a plain `pytest` never starts a daemon. The fixture stops the
engine only if it started it: the runner starts it once for its lanes, and lab 05's
notebook may use it at the same time.
Import the fixture into a test module: `from tests.own_engine import ours`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from lab_env.stack import engine


@pytest.fixture(scope="module")
def ours() -> Iterator[engine.Engine]:
    if os.environ.get("LAB_ENV_CONTAINERS") != "1":
        pytest.skip("starts a real Docker engine: run with LAB_ENV_CONTAINERS=1")
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.skip("lab-env starts its own engine only as root with dockerd installed (`lab-env setup --containers`)")
    other = engine.find()
    if other is not None and not other.managed:
        pytest.skip(f"another Docker engine answers on {other.host}")
    started = other is None  # tests/run_suite.py starts it before its lanes: then others use it too
    found = engine.start()
    try:
        yield found
    finally:
        if started:
            engine.stop()
