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
