"""The native home's security claims, each against real sidecars and Redis.

Every drill runs twice: protected it must hold, and with the protection
removed it must not, so each claim has a test that fails without it.
"""

from __future__ import annotations

import pytest

from lab_env.homes import security

pytestmark = pytest.mark.stack

DRILLS = [security.api_token, security.component_scopes, security.secret_isolation]


@pytest.mark.parametrize("drill", DRILLS, ids=lambda d: d.__name__)
def test_the_protection_holds(drill):
    result = drill(protect=True)
    assert result.holds, str(result)


@pytest.mark.parametrize("drill", DRILLS, ids=lambda d: d.__name__)
def test_without_the_protection_the_drill_sees_the_hole(drill):
    result = drill(protect=False)
    assert not result.holds, f"the drill cannot tell a protected home from an open one: {result}"
