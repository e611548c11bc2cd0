"""A Zipkin server for the sidecars' spans, and reading a trace back from it.

Natively, Zipkin's released server jar (the one the image bakery puts in its
stand-in image, fetched once by Maven) runs as a worker on a free loopback
port, storing spans in memory: ``lab-env down`` stops it, and its spans go
with it. In the devcontainer, compose already runs Zipkin as ``zipkin:9411``,
and that one is used.

A sidecar sends spans to Zipkin when its Configuration says so
(``traced_config``): sampling rate 1 (every trace) and Zipkin's span endpoint.
Sidecars export in batches, so a trace shows up a few seconds after its request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from lab_env.core.names import run_token
from lab_env.core.ports import free_ports
from lab_env.core.probes import wait_until
from lab_env.core.profile import current
from lab_env.core.versions import pins
from lab_env.runtime import sidecar
from lab_env.runtime.workers import Worker, start_worker, stop_worker

HOST = "127.0.0.1"
HEAP_MB = 256
COMPOSE_URL = "http://zipkin:9411"  # devcontainer/compose.yaml
INSTANCE_TAG = "durabletask.task.instance_id"  # on the spans daprd makes for workflows and activities


@dataclass(frozen=True)
class Zipkin:
    url: str
    worker: Worker | None = field(default=None, repr=False)  # ours; None for the devcontainer's

    @property
    def span_endpoint(self) -> str:
        return f"{self.url}/api/v2/spans"

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)


def start_zipkin(name: str, timeout: float = 180) -> Zipkin:
    """Zipkin, answering: the devcontainer's, or a server of our own named ``name`` (a cell run twice replaces it)."""
    if current().name == "container":
        zipkin = Zipkin(COMPOSE_URL)
    else:
        from lab_env.stack.images import zipkin as image

        jar = image.jar(image.version_of(pins().image("zipkin")))  # fetched once, with a progress bar
        port = free_ports(1)[0]
        argv = [
            "java",
            f"-Xmx{HEAP_MB}m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # as the lab brokers: less CPU on a shared 2-core machine
            "-jar",
            str(jar),
            # loopback only; both keys of the listener, or Spring's list replaces the port with a random one
            f"--armeria.ports[0].ip={HOST}",
            f"--armeria.ports[0].port={port}",
        ]
        worker = start_worker(name, argv, env={"STORAGE_TYPE": "mem"}, ready=r"Serving HTTP at", timeout=timeout)
        zipkin = Zipkin(f"http://{HOST}:{port}", worker)
    wait_until(lambda: _healthy(zipkin.url), timeout, f"Zipkin at {zipkin.url}")
    return zipkin


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def traced_config(config: Path, zipkin: Zipkin) -> None:
    """Turn tracing on in a sidecar's Configuration file: every trace, sent to ``zipkin``."""
    doc = yaml.safe_load(config.read_text())
    doc["spec"]["tracing"] = {"samplingRate": "1", "zipkin": {"endpointAddress": zipkin.span_endpoint}}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))


def trace_of(
    zipkin: Zipkin, service: str, instance: str, also: tuple[str, ...] = (), timeout: float = 60
) -> list[dict]:
    """The trace of workflow ``instance`` (an order's id, say), from the sidecar of app ``service``.

    Sidecars export spans in batches as they end. In ``service``'s sidecar the workflow's own span
    ends last, once its children and their calls have ended, so that part of the trace is complete
    when that span is there. Other sidecars (``also``: the app ids of apps it called) export on their
    own clocks: the trace is complete once each has a span in it too."""
    tag = f"{INSTANCE_TAG}={instance}"
    found: list[list[dict]] = []

    def complete() -> bool:
        reply = httpx.get(
            f"{zipkin.url}/api/v2/traces",
            params={"serviceName": service, "annotationQuery": tag, "limit": 10, "lookback": 24 * 3600 * 1000},
            timeout=30,
        )
        reply.raise_for_status()
        found[:] = [t for t in reply.json() if any(_is_root_of(s, instance) for s in t)]
        seen = {s.get("localEndpoint", {}).get("serviceName") for s in found[0]} if found else set()
        return bool(found) and set(also) <= seen

    wait_until(
        complete,
        timeout,
        f"the trace of {instance} in Zipkin",
        failure=lambda: f"no finished trace of workflow {instance} from {', '.join((service, *also))} in Zipkin",
        fix="is the app's sidecar started with a traced Configuration (tracing.zipkin.traced_config)?",
    )
    return found[0]


def _is_root_of(span: dict, instance: str) -> bool:
    return span["name"].startswith("orchestration||") and span.get("tags", {}).get(INSTANCE_TAG) == instance


def tree(spans: list[dict]) -> list[tuple[int, dict]]:
    """The spans as their tree, depth first, each child after its parent in order of start:
    (depth, span). A span whose parent is not in the trace counts as a root."""
    ids = {s["id"] for s in spans}
    children: dict[str | None, list[dict]] = {}
    for s in spans:
        parent = s.get("parentId")
        children.setdefault(parent if parent in ids else None, []).append(s)
    rows: list[tuple[int, dict]] = []

    def visit(parent: str | None, level: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s["timestamp"]):
            rows.append((level, s))
            visit(s["id"], level + 1)

    visit(None, 0)
    return rows


def short_name(span: dict) -> str:
    """The span's name without this run's token (``productactor-1a2b3c`` -> ``productactor``)."""
    return span["name"].replace(f"-{run_token()}", "")


def kind_of(span: dict) -> str:
    """What a sidecar span stands for, from its name: workflow, activity, actor call, state, event, invocation."""
    name = span["name"]
    for prefix, kind in (
        ("orchestration||", "workflow"),
        ("create_orchestration||", "workflow"),
        ("activity||", "activity"),
        ("callactor/", "actor call"),
        ("calllocal/", "service invocation"),
        (f"{sidecar.API}/publish/", "event published"),  # an HTTP API call's span is named by its path
        (f"{sidecar.API}/actors/", "actor state"),
        (f"{sidecar.API}/state/", "state"),
    ):
        if name.startswith(prefix):
            return kind
    if "pubsub" in name or name.startswith("bindings/"):
        return "event delivered"
    return "sidecar API"


def by_kind(spans: list[dict]) -> Counter[str]:
    return Counter(kind_of(s) for s in spans)
