"""A sidecar's own metrics: daprd serves them in Prometheus' text format on its metrics port.

value(app, "dapr_runtime_actor_pending_actor_calls", actor_type=PRODUCT)
series(app, "dapr_resiliency_activations_total")   # [(labels, value)], one per label set
resiliency_counts(app, "app_nova")                  # {(policy, breaker state): (applied, activated)}
with sampling(app, "dapr_runtime_actor_pending_actor_calls") as samples:
    ...  # the work to watch; samples fills with (seconds since start, value)
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp

# name{label="value",...} number   (labels optional; Prometheus text exposition format)
_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Poll often enough to see a queue that forms and drains within a second.
SAMPLE_EVERY_S = 0.01


def metrics_url(app: DaprApp) -> str:
    """Where ``app``'s sidecar serves its metrics (the --metrics-port it was started with)."""
    argv = app.sidecar_argv
    if "--metrics-port" not in argv:
        raise LabEnvError(f"{app.app_id}'s sidecar was started without a metrics port", "start it with start_app")
    return f"http://127.0.0.1:{argv[argv.index('--metrics-port') + 1]}/metrics"


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text page: (metric name, labels, value)."""
    samples = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def series(app: DaprApp, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` whose labels include ``labels``: (its labels, its value)."""
    page = sidecar.client().get(metrics_url(app), timeout=10).text
    return [(have, v) for n, have, v in parse(page) if n == name and all(have.get(k) == w for k, w in labels.items())]


def value(app: DaprApp, name: str, **labels: str) -> float:
    """The sum of metric ``name`` over the samples whose labels include ``labels`` (0 when there is none)."""
    return sum(v for _, v in series(app, name, **labels))


def resiliency_counts(app: DaprApp, target: str) -> dict[tuple[str, str], tuple[int, int]]:
    """What ``app``'s sidecar counted of its resiliency policies for ``target`` ("app_<id>", "actor_<type>",
    or "<component type>_<name>"): {(policy, breaker state or ""): (applied, activated)}.

    Applied counts calls (once each, whatever happened in it; a breaker's by its state then). Activated
    counts a retry policy once per call that needed retries, a timeout once per call it ended, and a
    breaker once per call across which its state changed, under the state after the call: half-open,
    entered when the breaker is asked after its timeout and left within that trial call, never shows."""
    counts: dict[tuple[str, str], list[int]] = {}
    for column, name in enumerate(("dapr_resiliency_count", "dapr_resiliency_activations_total")):
        for labels, n in series(app, name, target=target):
            counts.setdefault((labels["policy"], labels.get("status", "")), [0, 0])[column] += int(n)
    return {key: (applied, activated) for key, (applied, activated) in sorted(counts.items())}


@contextmanager
def sampling(app: DaprApp, name: str, **labels: str) -> Iterator[list[tuple[float, float]]]:
    """Sample metric ``name`` in a background thread while the block runs: (seconds since start, value)."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    start = time.monotonic()

    def poll() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - start, value(app, name, **labels)))
            stop.wait(SAMPLE_EVERY_S)

    thread = threading.Thread(target=poll, name=f"metrics-{app.app_id}", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        samples.append((time.monotonic() - start, value(app, name, **labels)))
