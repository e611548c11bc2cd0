"""The trace an app's code runs in, passed on to the sidecar calls it makes.

A sidecar traces what passes through it: each call gets a span, and a call
that arrives with a W3C ``traceparent`` header joins that trace. Dapr passes
the trace on across its own hops (a workflow to its activities, an invocation
to the app it calls), but a call the app's code makes is a new request: it
joins the trace only if the app copies the context into it.

The workflow SDK opens an OpenTelemetry span around each activity, from the
``traceparent`` daprd sends with the work item. With the OpenTelemetry API
alone (no tracing SDK in the app), that span records nothing and carries
daprd's context, as the OpenTelemetry specification asks of the API; so
``headers()`` inside an activity names daprd's activity span as the parent of
the activity's own calls. The app exports no spans of its own.
"""

from __future__ import annotations

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current context; empty outside a trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier
