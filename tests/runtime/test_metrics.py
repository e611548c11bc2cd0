"""Reading a sidecar's Prometheus page: the parser on a page shaped as daprd 1.18 writes it."""

from __future__ import annotations

import pytest

from lab_env.runtime import metrics

PAGE = """\
# HELP dapr_runtime_actor_pending_actor_calls The number of pending actor calls waiting to acquire the per-actor lock.
# TYPE dapr_runtime_actor_pending_actor_calls gauge
dapr_runtime_actor_pending_actor_calls{actor_type="ProductActor-ab12",app_id="market-ab12"} 7
dapr_runtime_actor_pending_actor_calls{actor_type="BaseAgent-ab12",app_id="market-ab12"} 2
dapr_http_server_request_count{app_id="market-ab12",method="PUT",path="a \\"quoted\\" path",status="200"} 1.5e+02
process_open_fds 42
"""


def test_parse_reads_names_labels_and_values():
    samples = metrics.parse(PAGE)
    assert ("process_open_fds", {}, 42.0) in samples
    assert (
        "dapr_runtime_actor_pending_actor_calls",
        {"actor_type": "ProductActor-ab12", "app_id": "market-ab12"},
        7.0,
    ) in samples
    requests = [s for s in samples if s[0] == "dapr_http_server_request_count"]
    assert requests[0][1]["path"] == 'a \\"quoted\\" path' and requests[0][2] == 150.0
    assert len(samples) == 4, "comment lines are not samples"


@pytest.mark.stack
def test_the_sidecar_counts_calls_waiting_for_an_actors_turn():
    """Lab 01's picture: 100 reservations at once queue in the sidecar, one turn at a time, then drain."""
    import asyncio

    import httpx

    from lab_env.runtime import sidecar
    from lab_env.runtime.actors import actor_type_in, invoke
    from lab_env.runtime.apps import stop_app
    from lab_env.runtime.scale import start_hosts

    (host,) = start_hosts(1, name="t-metrics")
    try:
        product = actor_type_in(host, "ProductActor")
        invoke(host, product, "gpu", "Restock", 100)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=host.sidecar_url, timeout=60) as client:
                path = sidecar.actor_method_path(product, "gpu", "Reserve")
                sent = (client.put(path, json={"order_id": f"o-{n}", "quantity": 1}) for n in range(100))
                return [r.status_code for r in await asyncio.gather(*sent)]

        with metrics.sampling(host, "dapr_runtime_actor_pending_actor_calls", actor_type=product) as line:
            assert asyncio.run(burst()) == [200] * 100
        assert max(v for _, v in line) > 1, f"no call ever waited for the turn: {line}"
        assert line[-1][1] == 0, "calls still waiting after every answer came"
    finally:
        stop_app(host)


@pytest.mark.stack
def test_the_callers_sidecar_counts_its_retries_and_the_breaker_opening(tmp_path):
    """Lab 06's counters: calls to a peer that is down make the caller's sidecar retry, then open the breaker."""
    from lab_env.marketplace.agents.contractor import start_sellers
    from lab_env.runtime.apps import start_app, stop_app, stop_apps
    from lab_env.runtime.peers import call

    sellers = start_sellers({"nova": (10.0, 3, "reliable")}, prefix="t-cb-")
    peer = sellers["nova"].app_id
    policy = tmp_path / "peer-resiliency.yaml"
    policy.write_text(PEER_POLICY.replace("PEER", peer))
    buyer = start_app(f"t-cb-buyer-{peer.rsplit('-', 1)[-1]}", components=["pubsub"], resources=[policy])
    try:
        assert call(buyer, peer, "quote", {"task": "up"}).ok
        sellers["nova"].crash()
        outcomes = [call(buyer, peer, "quote", {"task": f"down-{n}"}).outcome() for n in range(5)]
        assert outcomes == ["failed"] + ["breaker open"] * 4, outcomes
        target = f"app_{peer}"
        # Applied: once per call. Activated: the retry once per call that needed retries (its three
        # attempts tripped the breaker), the breaker once per change of state.
        assert metrics.resiliency_counts(buyer, target) == {
            ("circuitbreaker", "closed"): (2, 0),  # the call while nova was up, and the first after its crash
            ("circuitbreaker", "open"): (4, 1),  # refused at once, nova never tried; opened once
            ("retry", ""): (6, 1),
            ("timeout", ""): (6, 0),
        }
        assert metrics.value(buyer, "dapr_resiliency_cb_state", target=target, status="open") == 1
    finally:
        stop_app(buyer)
        stop_apps(sellers.values())


PEER_POLICY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: peer-calls
spec:
  policies:
    timeouts: {quick: 2s}
    retries: {twice: {policy: constant, duration: 100ms, maxRetries: 2}}
    circuitBreakers: {peer-breaker: {maxRequests: 1, timeout: 30s, trip: consecutiveFailures >= 3}}
  targets:
    apps:
      PEER: {timeout: quick, retry: twice, circuitBreaker: peer-breaker}
"""
