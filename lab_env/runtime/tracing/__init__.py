"""Tracing: follow one request across sidecars.

``context``  inside an app: the trace an activity runs in, as headers for its own sidecar calls.
``zipkin``   outside: a Zipkin server to collect the sidecars' spans, and reading traces back.
"""
