from __future__ import annotations

import sys
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
# Test apps' shared modules (actor interfaces) are imported by the tests too.
sys.path.insert(0, str(APPS))


@pytest.fixture
def apps_dir() -> Path:
    return APPS
