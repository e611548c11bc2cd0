"""Reading a trace back (lab_env.runtime.tracing): pure logic on Zipkin's span
format, and the context an app passes on. The live trace of an order is in
tests/marketplace/test_market.py."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lab_env.core.names import run_token
from lab_env.runtime.tracing import context
from lab_env.runtime.tracing import zipkin as tracing


def span(id_: str, name: str, start: int, parent: str | None = None) -> dict:
    return {"id": id_, "name": name, "timestamp": start, "duration": 5, **({"parentId": parent} if parent else {})}


def test_the_tree_puts_each_child_under_its_parent_in_order_of_start():
    spans = [
        span("c", "activity||debit", 30, "a"),
        span("a", "orchestration||order_saga", 10),
        span("b", "activity||reserve", 20, "a"),
        span("d", "callactor/productactor/reserve", 21, "b"),
        span("e", "callactor/walletactor/debit", 31, "gone"),  # its parent was not exported: a root
    ]
    assert [(depth, s["id"]) for depth, s in tracing.tree(spans)] == [(0, "a"), (1, "b"), (2, "d"), (1, "c"), (0, "e")]


def test_kinds_and_short_names():
    token = run_token()
    assert tracing.kind_of(span("x", f"callactor/productactor-{token}/reserve", 0)) == "actor call"
    assert tracing.kind_of(span("x", "/v1.0/publish/kafka-pubsub/orders", 0)) == "event published"
    assert tracing.kind_of(span("x", "create_orchestration||purchase", 0)) == "workflow"
    assert (
        tracing.short_name(span("x", f"callactor/productactor-{token}/reserve", 0)) == "callactor/productactor/reserve"
    )


def test_the_incoming_context_is_passed_on_and_nothing_outside_it():
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    parent = TraceContextTextMapPropagator().extract({"traceparent": incoming})
    assert context.headers() == {}
    # what the workflow SDK does around each activity
    with trace.get_tracer("dapr.ext.workflow").start_as_current_span("activity: reserve", context=parent):
        assert context.headers() == {"traceparent": incoming}
    assert context.headers() == {}
