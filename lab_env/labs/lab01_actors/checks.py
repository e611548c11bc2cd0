"""Checks for lab 01: agents as virtual actors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

import httpx

from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.labs.checks import call_learner, check, fresh
from lab_env.runtime import sidecar
from lab_env.runtime.actors import ActorCallFailed, actor_type, invoke, placement_table, where_activated
from lab_env.runtime.apps import DaprApp, apps_of_run, run_token

_GO_DURATION = re.compile(r"^(\d+)h(\d+)m(\d+)s")


def _idle_timeout_seconds(app: DaprApp) -> float | None:
    """The actor idle timeout the app gives its sidecar (GET /dapr/config), in seconds."""
    config = sidecar.client(keep_alive=False).get(f"{app.app_url}/dapr/config", timeout=10).json()
    match = _GO_DURATION.match(str(config.get("actorIdleTimeout", "")))
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3]) if match else None


def activated_ids(prefix: str) -> set[str]:
    """Ids starting with ``prefix`` that any app of this run has activated (their /lifecycle logs).

    Placement spreads an actor type over every app that hosts it, so all are asked.
    """
    found: set[str] = set()
    for app in apps_of_run(run_token()):
        try:
            events = sidecar.client(keep_alive=False).get(f"{app.app_url}/lifecycle", timeout=30).json()
        except (LabEnvError, httpx.HTTPError, ValueError):
            continue  # an app without a lifecycle log hosts none of them
        found |= {
            e["actor_id"] for e in events if e.get("event") == "activated" and str(e.get("actor_id")).startswith(prefix)
        }
    return found


@check(
    "BaseAgent",
    hint="Handle() looks up a method named on_<type>; unknown types return "
    "{'ok': False, 'error': ...}; count handled messages in actor state",
)
def base_agent(app: DaprApp) -> str:
    agent, aid = actor_type("BaseAgent"), fresh("agent")
    reply = invoke(app, agent, aid, "Handle", {"type": "ping", "payload": {}})
    assert reply == {"ok": True, "reply": "pong"}, (
        f"Handle(ping) returned {reply!r}, expected {{'ok': True, 'reply': 'pong'}}"
    )
    reply = invoke(app, agent, aid, "Handle", {"type": "teleport", "payload": {}})
    assert isinstance(reply, dict) and reply.get("ok") is False and "teleport" in str(reply.get("error", "")), (
        f"an unknown message type must give ok=False and an error naming the type, got {reply!r}"
    )
    health = invoke(app, agent, aid, "Health")
    assert isinstance(health, dict) and health.get("handled") == 1, (
        f"Health() reports handled={health.get('handled') if isinstance(health, dict) else health!r} after one "
        "handled and one unknown message; expected 1"
    )
    return "ping answered, unknown type refused, 1 message counted"


@check(
    "ProductActor stock", hint="keep the count in self._state_manager under 'stock' and save_state() after each change"
)
def product_stock(app: DaprApp) -> str:
    product, pid = actor_type("ProductActor"), fresh("sku")
    assert invoke(app, product, pid, "Stock") == 0, "a new product must start with stock 0"
    got = invoke(app, product, pid, "Restock", 10)
    assert got == 10, f"Restock(10) on a new product returned {got!r}, expected 10"
    got = invoke(app, product, pid, "Reserve", 3)
    assert got == {"ok": True, "stock": 7}, f"Reserve(3) of 10 returned {got!r}, expected {{'ok': True, 'stock': 7}}"
    got = invoke(app, product, pid, "Reserve", 20)
    assert got == {"ok": False, "stock": 7}, f"Reserve(20) of 7 returned {got!r}, expected {{'ok': False, 'stock': 7}}"
    assert invoke(app, product, pid, "Stock") == 7, "Stock() must return what is left after reservations"
    return "restock, reserve and refuse-overselling all work"


@check(
    "idle deactivation",
    hint="ActorRuntimeConfig's actor_idle_timeout is how long an actor may go without a call before "
    "Dapr deactivates it: make it IDLE_SECONDS",
)
def idle_deactivation(app: DaprApp, patience: float = 60.0) -> str:
    product, pid = actor_type("ProductActor"), fresh("idle")
    idle = _idle_timeout_seconds(app)
    wanted = float(app.env.get("IDLE_SECONDS", "4"))
    # What the app told its sidecar decides at once whether deactivation can come soon.
    assert idle is not None and idle <= max(wanted, 60), (
        f"the app keeps idle actors for {'an unknown time' if idle is None else f'{idle:.0f} s'} "
        "(Dapr's default is an hour): "
        "idle_config() must set actor_idle_timeout to IDLE_SECONDS"
    )
    invoke(app, product, pid, "Stock")

    def events() -> list[str]:
        logged = sidecar.client(keep_alive=False).get(f"{app.app_url}/lifecycle", timeout=10).json()
        return [e["event"] for e in logged if e["actor_id"] == pid]

    assert events()[:1] == ["activated"], "the first call did not activate the actor (no 'activated' event)"
    # A safety net: Dapr 1.18 deactivates an actor when its own idle deadline passes (no periodic scan).
    limit = idle + patience
    wait_until(
        lambda: "deactivated" in events(),
        limit,
        "actor deactivation",
        failure=f"the actor was still active {limit:.0f}s after its last call (idle timeout {idle} s); "
        "does something keep calling it (a timer counts as a call)?",
    )
    return "activated on first call, deactivated when idle"


@check(
    "turn-based concurrency",
    hint="create one Reserve(1) coroutine per call, then await them together with asyncio.gather(*coroutines)",
)
def turn_based(app: DaprApp, reserve_concurrently: Callable[[str, int], Awaitable[list]], calls: int = 100) -> str:
    product, pid = actor_type("ProductActor"), fresh("rush")
    invoke(app, product, pid, "Restock", calls)
    replies = call_learner(reserve_concurrently, pid, calls, timeout=300, what="reserve_concurrently")
    assert isinstance(replies, list) and len(replies) == calls, (
        f"reserve_concurrently({pid!r}, {calls}) must return one reply per call, got "
        f"{len(replies) if isinstance(replies, list) else type(replies).__name__}"
    )
    accepted = sum(1 for r in replies if isinstance(r, dict) and r.get("ok"))
    left = invoke(app, product, pid, "Stock")
    assert accepted == calls and left == 0, (
        f"{calls} reservations of 1 from a stock of {calls}: {accepted} accepted and {left} left, "
        f"expected {calls} and 0"
    )
    return f"{calls} concurrent reservations, none lost"


@check(
    "reminders outlive a crash",
    hint="in start_ticking call self.register_reminder(name, b'', period, period); receive_reminder counts the ticks",
)
def reminder_outlives_crash(app: DaprApp, timeout: float = 120.0) -> str:
    product, pid = actor_type("ProductActor"), fresh("ticker")

    def ticks() -> dict:
        return invoke(app, product, pid, "Ticks")

    invoke(app, product, pid, "StartTicking", 1)
    wait_until(
        lambda: ticks()["reminder"] >= 2,
        timeout,
        "reminder ticks",
        failure=lambda: f"the reminder did not fire twice within {timeout:.0f}s (ticks {ticks()!r})",
    )
    app.crash()
    app.restart()
    # The counts saved before the crash (however late it came: a sandboxed app is crashed from
    # inside its container); reading them activates the actor on the new host.
    restarted = ticks()
    wait_until(
        lambda: ticks()["reminder"] >= restarted["reminder"] + 2,
        timeout,
        "reminder after restart",
        failure=f"the reminder did not fire again within {timeout:.0f}s of the restart",
    )
    after = ticks()
    assert after["timer"] == restarted["timer"], (
        f"the timer kept firing after the crash ({restarted['timer']} -> {after['timer']}); only reminders should"
    )
    return "the reminder fired again after the restart, the timer did not"


@check("capabilities and health", hint="ProductActor.CAPABILITIES lists what it can do; Health() reports 'healthy'")
def capabilities(app: DaprApp) -> str:
    product, pid = actor_type("ProductActor"), fresh("caps")
    caps = invoke(app, product, pid, "Capabilities")
    assert isinstance(caps, list) and {"reserve", "restock"} <= set(caps), f"Capabilities() returned {caps!r}"
    health = invoke(app, product, pid, "Health")
    assert isinstance(health, dict) and health.get("status") == "healthy" and health.get("agent") == pid, (
        f"Health() returned {health!r}"
    )
    return "capabilities listed, health reported"


@check("10,000 actors", hint="record one sample per batch: {'actors': total so far, 'ms_per_call': ..., 'rss_mb': ...}")
def scale(samples: Sequence[dict], at_least: int = 10_000) -> str:
    assert samples, "no samples recorded"
    counts = [s["actors"] for s in samples]
    assert counts == sorted(counts), "samples must be in the order the actors were activated"
    assert counts[-1] >= at_least, f"only {counts[-1]} actors activated, at least {at_least:,} needed"
    assert all(s["ms_per_call"] > 0 and s["rss_mb"] > 0 for s in samples), (
        "every sample needs ms_per_call and rss_mb > 0"
    )
    # The samples are the notebook's word; the apps' activation logs are the proof.
    activated = activated_ids("sku-")
    assert len(activated) >= at_least, (
        f"the apps activated {len(activated):,} sku-<i> products, at least "
        f"{at_least:,} expected: call Stock on sku-0, sku-1, ... through the sidecar"
    )
    return f"{len(samples)} samples up to {counts[-1]:,} actors"


@check(
    "failover",
    hint="a product that moves finds its stock only under the key it was saved with, and Dapr's actor state "
    "keys begin with the app id of the host that saved it: the annex must run under the market's app id",
)
def failover(market: DaprApp, annex: DaprApp | None) -> str:
    assert annex is not None, "no annex: start one with start_app"
    product, prefix = actor_type("ProductActor"), fresh("failover")
    stock: dict[str, int] = {}

    def some_on_annex() -> bool:
        """Restock twelve more new products; whether placement put any of them on the annex.
        (A host that has just started is in the market's table a moment after it is healthy.)"""
        for n in range(len(stock), len(stock) + 12):
            stock[f"{prefix}-{n}"] = 10 + n % 50
            invoke(market, product, f"{prefix}-{n}", "Restock", stock[f"{prefix}-{n}"])
        return annex.app_id in where_activated([market, annex], prefix).values()

    wait_until(
        some_on_annex,
        60,
        "products on the annex",
        failure="placement put no product on the annex: does it host ProductActor?",
    )
    annex.crash()
    try:
        address = f":{annex.internal_port}"
        wait_until(
            lambda: not any(row["address"].endswith(address) for row in placement_table()),
            60,
            "placement to drop the annex",
        )
        got: dict[str, int] = {}

        def read_all() -> bool:
            for product_id in stock.keys() - got.keys():
                try:
                    got[product_id] = invoke(market, product, product_id, "Stock")
                except ActorCallFailed:  # the market's sidecar may route to the dead annex a moment longer
                    pass
            return got.keys() == stock.keys()

        wait_until(read_all, 60, "the market to answer for every product")
        for product_id, units in stock.items():  # all of them: the annex's own log says nothing here
            assert got[product_id] == units, (
                f"{product_id} had {units} units; once the annex was gone the market reads {got[product_id]}: "
                "the market looks for its state under another key"
            )
    finally:
        annex.restart()  # the notebook goes on with both hosts
    return "the annex's products moved to the market with their stock"
