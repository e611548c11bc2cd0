"""The native home's security claims, each against real sidecars and Redis.

Every drill runs twice: protected it must hold, and with the protection
removed it must not, so each claim has a test that fails without it.
"""

from __future__ import annotations

import pytest

from lab_env.marketplace.homes import security

pytestmark = pytest.mark.stack

DRILLS = [
    security.api_token,
    security.component_scopes,
    security.secret_isolation,
    security.mtls,
    security.access_control,
]


@pytest.mark.parametrize("drill", DRILLS, ids=lambda d: d.__name__)
def test_the_protection_holds(drill):
    result = drill(protect=True)
    assert result.holds, str(result)


@pytest.mark.parametrize("drill", DRILLS, ids=lambda d: d.__name__)
def test_without_the_protection_the_drill_sees_the_hole(drill):
    result = drill(protect=False)
    assert not result.holds, f"the drill cannot tell a protected home from an open one: {result}"


def test_a_sentry_leaves_nothing_behind_and_serves_on_loopback_only():
    import psutil

    from lab_env.core import procs
    from lab_env.runtime.sentry import peer_certificate, start_sentry, stop_sentry

    s = start_sentry()
    pid = s.pid
    try:
        listening = [
            c.laddr for c in psutil.Process(s.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
        assert "BEGIN CERTIFICATE" in s.trust_anchors()
        assert peer_certificate(s.port) is not None  # sentry itself serves TLS
    finally:
        stop_sentry(s)
    # Not running: an exited child this process has not reaped yet is a zombie, which pid_exists still counts.
    assert not procs.alive(pid) and not s.workdir.exists()


def test_the_policy_refuses_service_invocation_yet_actor_calls_reach_the_products_actors():
    """Lab 05's claim, on the real products agent: access-control policies cover service invocation only."""
    import yaml

    from lab_env.core.paths import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "lab_env" / "marketplace" / "homes" / "marketplace.yaml").read_text())
    products = next(agent for agent in raw["agents"] if agent["app_id"] == "products")
    products["callers"] = {"mediator": ["Reserve"]}
    calls = {(c.caller, c.how): c for c in security.actor_calls_past_policy(raw)}
    assert calls[("buyers", "service invocation")].status == 403, calls
    # Let through by the policy, but the app has no such route: Reserve is the actor's method.
    assert calls[("mediator", "service invocation")].status == 404, calls
    for caller in ("mediator", "buyers"):
        reached = calls[(caller, "actor API")]
        assert reached.status == 200 and '"ok": true' in reached.answer, calls
