from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab_env import stop_app, unique_name
from lab_env.runtime import workflows

APPS = Path(__file__).parent / "apps"
# Test apps' shared modules (actor interfaces) are imported by the tests too.
sys.path.insert(0, str(APPS))


@pytest.fixture
def apps_dir() -> Path:
    return APPS


@pytest.fixture
def start(tmp_path):
    """start(module, source): a check test's wrong answer (tests/grading/solution_mutations.py)
    run as the lab runs it, its workflows and ACTORS in an app; stopped after the test."""
    started = []

    def run(module: str, source: str):
        (tmp_path / f"{module}.py").write_text(source)
        app = workflows.start_agents_app(unique_name(f"t-{module[:8].replace('_', '-')}"), module, cwd=tmp_path)
        started.append(app)
        return app

    yield run
    for app in started:
        stop_app(app)
