"""The HPA on real CPU: an app whose requests cost CPU, a load that calls it, and the waits.

Used by tests/runtime/test_kind_cluster.py and bench/kubernetes_bench.py on the
kind cluster built here (any cluster whose nodes hold AGENT_IMAGE will do).

    kubectl(*args, stdin=None) -> str     # the caller's kubectl runner
    apply_app(kubectl)                    # cpu-app, its Service and HPA; 1 replica ready
    start_load(kubectl); stop_load(kubectl)
    seconds = until_replicas(kubectl, lambda n: n >= 2)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

AGENT_IMAGE = "localhost/lab-env/agent-base:3.11-bookworm"
APP = "cpu-app"
# A safety net only: the HPA's own status decides; a busy 2-core machine may take minutes.
SCALE_LIMIT_S = 900.0
POLL_S = 2.0

# Every request costs 50 ms of CPU. The HPA aims at 50 % of a 100m request; its
# scale-down window is 0, so it comes back down as soon as the metrics say so.
SERVE = (
    "import http.server, time\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        end = time.process_time() + 0.05\n"
    "        while time.process_time() < end: pass\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *args): pass\n"
    "http.server.ThreadingHTTPServer(('', 8000), H).serve_forever()\n"
)
LOAD = (
    "import urllib.request\n"
    "while True:\n"
    "    try: urllib.request.urlopen('http://cpu-app:8000/', timeout=5).read()\n"
    "    except OSError: pass\n"
)

Kubectl = Callable[..., str]


def deployment(name: str, code: str, cpu: str) -> dict:
    container = {
        "name": "app",
        "image": AGENT_IMAGE,
        "command": ["python3", "-c", code],
        "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": "500m"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def manifests() -> dict:
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}
    hpa = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
        "minReplicas": 1,
        "maxReplicas": 4,
        "metrics": [{"type": "Resource", "resource": cpu}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
    }
    items = [
        deployment(APP, SERVE, "100m"),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": APP},
            "spec": {"selector": {"app": APP}, "ports": [{"port": 8000}]},
        },
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": APP}, "spec": hpa},
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def apply_app(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(manifests()))
    kubectl("rollout", "status", f"deployment/{APP}", "--timeout=600s")


def start_load(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment("load", LOAD, "50m")))


def stop_load(kubectl: Kubectl) -> None:
    kubectl("delete", "deployment", "load")


def ready_replicas(kubectl: Kubectl) -> int:
    return int(json.loads(kubectl("get", "deployment", APP, "-o", "json"))["status"].get("readyReplicas", 0))


def desired_replicas(kubectl: Kubectl) -> int:
    return int(json.loads(kubectl("get", "hpa", APP, "-o", "json"))["status"].get("desiredReplicas", 0))


def until_replicas(kubectl: Kubectl, predicate: Callable[[int], bool], what: str) -> float:
    """Seconds until the ready replicas satisfy ``predicate``; AssertionError past the safety net."""
    started = time.monotonic()
    while not predicate(ready_replicas(kubectl)):
        if time.monotonic() - started > SCALE_LIMIT_S:
            raise AssertionError(f"{what}: no change in {SCALE_LIMIT_S:.0f} s")
        time.sleep(POLL_S)
    return time.monotonic() - started
