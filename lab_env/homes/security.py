"""Security of the native home, proven with real sidecars (daprd and Redis).

Each drill sets the protection up, makes the call a stranger (or a careless
app) would make, and reports what the sidecar answered. ``protect=False``
runs the same drill with the protection removed, so a test can show that
the drill tells the two apart: a drill that passes either way proves nothing.

    api_token          the sidecar's API requires DAPR_API_TOKEN
    component_scopes   an app outside a component's scopes cannot use it
    secret_isolation   the model key comes from the secret store, and is in no
                       process environment, log or API answer besides it
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import yaml

from ..apps import start_app, stop_app, unique_name
from ..profile import current

TIMEOUT_S = 30.0  # a safety net for one HTTP call on a busy machine


@dataclass
class Drill:
    name: str
    holds: bool
    calls: list[tuple[str, str]] = field(default_factory=list)  # (what was tried, what happened)

    def __str__(self) -> str:
        mark = "\u2705" if self.holds else "\u274c"
        return f"{mark} {self.name}: " + "; ".join(f"{what} -> {result}" for what, result in self.calls)


def api_token(protect: bool = True) -> Drill:
    """A call to the sidecar's API without the token is refused (401); with it, it passes."""
    token = secrets.token_urlsafe(24)
    app = start_app(unique_name("token-drill"), components=[], env={"DAPR_API_TOKEN": token} if protect else {})
    try:
        url = f"{app.sidecar_url}/v1.0/metadata"
        without = httpx.get(url, timeout=TIMEOUT_S).status_code
        wrong = httpx.get(url, headers={"dapr-api-token": "guess"}, timeout=TIMEOUT_S).status_code
        right = httpx.get(url, headers={"dapr-api-token": token}, timeout=TIMEOUT_S).status_code
    finally:
        stop_app(app)
    return Drill("API token", holds=without == 401 and wrong == 401 and right == 200,
                 calls=[("no token", f"HTTP {without}"), ("wrong token", f"HTTP {wrong}"), ("right token", f"HTTP {right}")])


def _scoped_store(folder: Path, name: str, scopes: list[str] | None) -> Path:
    doc = {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
           "spec": {"type": "state.redis", "version": "v1",
                    "metadata": [{"name": "redisHost", "value": current().component_env()["LAB_REDIS_HOST"]}]}}
    if scopes is not None:
        doc["scopes"] = scopes
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def component_scopes(protect: bool = True) -> Drill:
    """Two apps load the same component file; only the one in its scopes may save state."""
    inside, outside = unique_name("scope-in"), unique_name("scope-out")
    store = unique_name("scoped-store")
    with tempfile.TemporaryDirectory(prefix="scope-drill-") as tmp:
        path = _scoped_store(Path(tmp), store, [inside] if protect else None)
        apps = []
        try:
            for app_id in (inside, outside):
                apps.append(start_app(app_id, components=[store], resources=[path]))
            results = []
            for app in apps:
                response = httpx.post(f"{app.sidecar_url}/v1.0/state/{store}",
                                      json=[{"key": "drill", "value": app.app_id}], timeout=TIMEOUT_S)
                results.append(response.status_code)
        finally:
            for app in apps:
                stop_app(app)
    return Drill("component scopes", holds=results[0] == 204 and results[1] >= 400,
                 calls=[(f"{inside} (in scopes) saves state", f"HTTP {results[0]}"),
                        (f"{outside} (not in scopes) saves state", f"HTTP {results[1]}")])


def secret_isolation(protect: bool = True) -> Drill:
    """The app reads the model key from the secret store; the key is in no
    process environment, log or metadata answer. Unprotected, the key is
    handed to the app in its environment, the usual leak."""
    key = "sk-drill-" + secrets.token_hex(16)
    store = unique_name("drill-secrets")
    with tempfile.TemporaryDirectory(prefix="secret-drill-") as tmp:
        secrets_file = Path(tmp) / "secrets.json"
        secrets_file.write_text(json.dumps({"openai-api-key": key}))
        secrets_file.chmod(0o600)
        component = Path(tmp) / f"{store}.yaml"
        component.write_text(yaml.safe_dump({
            "apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": store},
            "spec": {"type": "secretstores.local.file", "version": "v1",
                     "metadata": [{"name": "secretsFile", "value": str(secrets_file)}]}}, sort_keys=False))
        env = {} if protect else {"OPENAI_API_KEY": key}
        # The app: any HTTP server stands in for an agent (serving an empty folder, not this one).
        empty = Path(tmp) / "www"
        empty.mkdir()
        app = start_app(unique_name("secret-drill"),
                        [sys.executable, "-m", "http.server", "{app_port}", "--bind", "127.0.0.1", "--directory", str(empty)],
                        components=[store], resources=[component], env=env)
        try:
            fetched = httpx.get(f"{app.sidecar_url}/v1.0/secrets/{store}/openai-api-key", timeout=TIMEOUT_S)
            from_store = fetched.status_code == 200 and fetched.json().get("openai-api-key") == key
            leaks = []
            for role, pid in (("app", app.app_pid), ("sidecar", app.sidecar_pid)):
                if pid and any(key in value for value in psutil.Process(pid).environ().values()):
                    leaks.append(f"{role} environment")
            for role in ("app", "daprd"):
                if key in app.logs(role, 10_000):
                    leaks.append(f"{role} log")
            if key in httpx.get(f"{app.sidecar_url}/v1.0/metadata", timeout=TIMEOUT_S).text:
                leaks.append("metadata API")
        finally:
            stop_app(app)
    return Drill("secret isolation", holds=from_store and not leaks,
                 calls=[("app asks the secret store", "got the key" if from_store else f"HTTP {fetched.status_code}"),
                        ("key searched in environments, logs, metadata", ", ".join(leaks) or "found nowhere")])
