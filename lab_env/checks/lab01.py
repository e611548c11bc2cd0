"""Checks for lab 01: agents as virtual actors."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence

import httpx

from ..actors import actor_type, invoke
from ..apps import DaprApp
from ..errors import LabEnvError
from ..probes import wait_until
from .core import check, run_coroutine


def _fresh_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@check("BaseAgent", hint="Handle() looks up a method named on_<type>; unknown types return "
       "{'ok': False, 'error': ...}; count handled messages in actor state")
def base_agent(app: DaprApp) -> str:
    agent, aid = actor_type("BaseAgent"), _fresh_id("agent")
    reply = invoke(app, agent, aid, "Handle", {"type": "ping", "payload": {}})
    assert reply == {"ok": True, "reply": "pong"}, f"Handle(ping) returned {reply!r}, expected {{'ok': True, 'reply': 'pong'}}"
    reply = invoke(app, agent, aid, "Handle", {"type": "teleport", "payload": {}})
    assert isinstance(reply, dict) and reply.get("ok") is False and "teleport" in str(reply.get("error", "")), (
        f"an unknown message type must give ok=False and an error naming the type, got {reply!r}")
    health = invoke(app, agent, aid, "Health")
    assert isinstance(health, dict) and health.get("handled") == 1, (
        f"Health() reports handled={health.get('handled') if isinstance(health, dict) else health!r} after one "
        "handled and one unknown message; expected 1")
    return "ping answered, unknown type refused, 1 message counted"


@check("ProductActor stock", hint="keep the count in self._state_manager under 'stock' and save_state() after each change")
def product_stock(app: DaprApp) -> str:
    product, pid = actor_type("ProductActor"), _fresh_id("sku")
    assert invoke(app, product, pid, "Stock") == 0, "a new product must start with stock 0"
    got = invoke(app, product, pid, "Restock", 10)
    assert got == 10, f"Restock(10) on a new product returned {got!r}, expected 10"
    got = invoke(app, product, pid, "Reserve", 3)
    assert got == {"ok": True, "stock": 7}, f"Reserve(3) of 10 returned {got!r}, expected {{'ok': True, 'stock': 7}}"
    got = invoke(app, product, pid, "Reserve", 20)
    assert got == {"ok": False, "stock": 7}, f"Reserve(20) of 7 returned {got!r}, expected {{'ok': False, 'stock': 7}}"
    assert invoke(app, product, pid, "Stock") == 7, "Stock() must return what is left after reservations"
    return "restock, reserve and refuse-overselling all work"


@check("idle deactivation", hint="pass actor_idle_timeout=timedelta(seconds=IDLE_SECONDS) and "
       "actor_scan_interval=timedelta(seconds=1) to ActorRuntimeConfig")
def idle_deactivation(app: DaprApp, timeout: float = 30.0) -> str:
    product, pid = actor_type("ProductActor"), _fresh_id("idle")
    invoke(app, product, pid, "Stock")

    def events() -> list[str]:
        return [e["event"] for e in httpx.get(f"{app.app_url}/lifecycle", timeout=5).json() if e["actor_id"] == pid]

    assert events()[:1] == ["activated"], "the first call did not activate the actor (no 'activated' event)"
    try:
        wait_until(lambda: "deactivated" in events(), timeout, "actor deactivation")
    except LabEnvError:
        raise AssertionError(f"the actor was still active {timeout:.0f}s after its last call") from None
    return "activated on first call, deactivated when idle"


@check("turn-based concurrency", hint="create one Reserve(1) coroutine per call, then await them together "
       "with asyncio.gather(*coroutines)")
def turn_based(app: DaprApp, reserve_concurrently: Callable[[str, int], Awaitable[list]], calls: int = 100) -> str:
    product, pid = actor_type("ProductActor"), _fresh_id("rush")
    invoke(app, product, pid, "Restock", calls)
    replies = run_coroutine(reserve_concurrently(pid, calls), timeout=60, what="reserve_concurrently")
    assert isinstance(replies, list) and len(replies) == calls, (
        f"reserve_concurrently({pid!r}, {calls}) must return one reply per call, got "
        f"{len(replies) if isinstance(replies, list) else type(replies).__name__}")
    accepted = sum(1 for r in replies if isinstance(r, dict) and r.get("ok"))
    left = invoke(app, product, pid, "Stock")
    assert accepted == calls and left == 0, (
        f"{calls} reservations of 1 from a stock of {calls}: {accepted} accepted and {left} left, expected {calls} and 0")
    return f"{calls} concurrent reservations, none lost"


@check("reminders outlive a crash", hint="in start_ticking call self.register_reminder(name, b'', period, period); "
       "receive_reminder counts the ticks")
def reminder_outlives_crash(app: DaprApp, timeout: float = 45.0) -> str:
    product, pid = actor_type("ProductActor"), _fresh_id("ticker")

    def ticks() -> dict:
        return invoke(app, product, pid, "Ticks")  # type: ignore[return-value]

    invoke(app, product, pid, "StartTicking", 1)
    try:
        wait_until(lambda: ticks()["reminder"] >= 2, timeout, "reminder ticks")
    except LabEnvError:
        raise AssertionError(f"the reminder did not fire twice within {timeout:.0f}s (ticks {ticks()!r})") from None
    before = ticks()
    app.crash()
    app.restart()
    try:
        wait_until(lambda: ticks()["reminder"] >= before["reminder"] + 2, timeout, "reminder after restart")
    except LabEnvError:
        raise AssertionError(f"the reminder did not fire again within {timeout:.0f}s of the restart") from None
    after = ticks()
    # One timer tick may have been in flight at the crash; more means it survived.
    assert after["timer"] <= before["timer"] + 1, (
        f"the timer kept firing after the crash ({before['timer']} -> {after['timer']}); only reminders should")
    return "the reminder fired again after the restart, the timer did not"


@check("capabilities and health", hint="ProductActor.CAPABILITIES lists what it can do; Health() reports 'healthy'")
def capabilities(app: DaprApp) -> str:
    product, pid = actor_type("ProductActor"), _fresh_id("caps")
    caps = invoke(app, product, pid, "Capabilities")
    assert isinstance(caps, list) and {"reserve", "restock"} <= set(caps), f"Capabilities() returned {caps!r}"
    health = invoke(app, product, pid, "Health")
    assert isinstance(health, dict) and health.get("status") == "healthy" and health.get("agent") == pid, (
        f"Health() returned {health!r}")
    return "capabilities listed, health reported"


@check("10,000 actors", hint="record one sample per batch: {'actors': total so far, 'ms_per_call': ..., 'rss_mb': ...}")
def scale(samples: Sequence[dict]) -> str:
    assert samples, "no samples recorded"
    counts = [s["actors"] for s in samples]
    assert counts == sorted(counts), "samples must be in the order the actors were activated"
    assert counts[-1] >= 10_000, f"only {counts[-1]} actors activated, at least 10,000 needed"
    assert all(s["ms_per_call"] > 0 and s["rss_mb"] > 0 for s in samples), "every sample needs ms_per_call and rss_mb > 0"
    return f"{len(samples)} samples up to {counts[-1]:,} actors"
