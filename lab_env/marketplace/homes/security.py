"""Security of the native home, proven with real sidecars (daprd and Redis).

Each drill sets the protection up, makes the call a stranger (or a careless
app) would make, and reports what the sidecar answered. ``protect=False``
runs the same drill with the protection removed, so a test can show that
the drill tells the two apart: a drill that passes either way proves nothing.

    api_token          the sidecar's API requires DAPR_API_TOKEN
    component_scopes   an app outside a component's scopes cannot use it
    secret_isolation   the model key comes from the secret store, and is in no
                       process environment, log or API answer besides it
    mtls               sidecars talk mutual TLS with certificates from Dapr's
                       sentry; a peer without a sentry certificate is refused
    access_control     the callee's Configuration (rendered from the spec)
                       denies every caller and method it does not name

Where a policy comes from: ``audit_calls`` runs the agents with no policy
and reads, from each caller's own sidecar metrics, which methods of which
agent it called and what each call got.

And one drill that shows a hole rather than a protection:

    actor_calls_past_policy  the same Configuration on the real products agent:
                       service invocation is refused, yet any sidecar on the
                       control plane reaches the agent's actors through the
                       actor API, which access-control policies do not cover
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import psutil
import yaml

from lab_env.core.profile import current
from lab_env.marketplace.homes.spec import HomeSpec
from lab_env.runtime import sentry as ca
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp, start_app, stop_app, unique_name

TIMEOUT_S = 30.0  # a safety net for one HTTP call on a busy machine


class _Certified(TypedDict, total=False):
    """start_app's keyword arguments that give a sidecar its certificate from sentry."""

    sidecar_args: Sequence[str]
    sidecar_env: Mapping[str, str]


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
        # The drill chooses the token itself (none, a wrong one, the right one), so not the app's.
        without, wrong, right = (
            sidecar.get(sidecar.Sidecar(app.sidecar_url, sent), sidecar.METADATA, timeout=TIMEOUT_S).status_code
            for sent in (None, "guess", token)
        )
    finally:
        stop_app(app)
    return Drill(
        "API token",
        holds=without == 401 and wrong == 401 and right == 200,
        calls=[("no token", f"HTTP {without}"), ("wrong token", f"HTTP {wrong}"), ("right token", f"HTTP {right}")],
    )


def _scoped_store(folder: Path, name: str, scopes: list[str] | None) -> Path:
    doc = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {
            "type": "state.redis",
            "version": "v1",
            "metadata": [{"name": "redisHost", "value": current().component_env()["LAB_REDIS_HOST"]}],
        },
    }
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
                response = sidecar.post(
                    app, sidecar.state_path(store), json=[{"key": "drill", "value": app.app_id}], timeout=TIMEOUT_S
                )
                results.append(response.status_code)
        finally:
            for app in apps:
                stop_app(app)
    return Drill(
        "component scopes",
        holds=results[0] == 204 and results[1] >= 400,
        calls=[
            (f"{inside} (in scopes) saves state", f"HTTP {results[0]}"),
            (f"{outside} (not in scopes) saves state", f"HTTP {results[1]}"),
        ],
    )


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
        component.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "dapr.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": store},
                    "spec": {
                        "type": "secretstores.local.file",
                        "version": "v1",
                        "metadata": [{"name": "secretsFile", "value": str(secrets_file)}],
                    },
                },
                sort_keys=False,
            )
        )
        env = {} if protect else {"OPENAI_API_KEY": key}
        # The app: any HTTP server stands in for an agent (serving an empty folder, not this one).
        empty = Path(tmp) / "www"
        empty.mkdir()
        app = start_app(
            unique_name("secret-drill"),
            [sys.executable, "-m", "http.server", "{app_port}", "--bind", "127.0.0.1", "--directory", str(empty)],
            components=[store],
            resources=[component],
            env=env,
        )
        try:
            fetched = sidecar.get(app, sidecar.secret_path(store, "openai-api-key"), timeout=TIMEOUT_S)
            from_store = fetched.status_code == 200 and fetched.json().get("openai-api-key") == key
            leaks = []
            for role, pid in (("app", app.app_pid), ("sidecar", app.sidecar_pid)):
                if pid and any(key in value for value in psutil.Process(pid).environ().values()):
                    leaks.append(f"{role} environment")
            for role in ("app", "daprd"):
                if key in app.logs(role, 10_000):
                    leaks.append(f"{role} log")
            if key in sidecar.get(app, sidecar.METADATA, timeout=TIMEOUT_S).text:
                leaks.append("metadata API")
        finally:
            stop_app(app)
    return Drill(
        "secret isolation",
        holds=from_store and not leaks,
        calls=[
            ("app asks the secret store", "got the key" if from_store else f"HTTP {fetched.status_code}"),
            ("key searched in environments, logs, metadata", ", ".join(leaks) or "found nowhere"),
        ],
    )


# An HTTP/2 client's first bytes: the connection preface and an empty SETTINGS frame.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _h2_session(port: int, tls: bool, identity: tuple[bytes, bytes] | None = None) -> str:
    """Open an HTTP/2 (gRPC) session with a sidecar's internal port, as another
    sidecar would: 'accepted' when the sidecar answers with its SETTINGS,
    else 'refused: <why>'. ``identity`` is a (certificate, key) to present."""
    import socket
    import ssl

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
            conn = raw
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                context.set_alpn_protocols(["h2"])
                if identity:
                    with tempfile.TemporaryDirectory() as tmp:
                        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
                        cert.write_bytes(identity[0])
                        key.write_bytes(identity[1])
                        context.load_cert_chain(cert, key)
                conn = context.wrap_socket(raw)
            conn.sendall(_H2_HELLO)
            reply = conn.recv(64)
    except ssl.SSLError as err:
        return f"refused: {err.reason or err}".replace("_", " ").lower()
    except OSError as err:
        return f"refused: {err.strerror or type(err).__name__}"
    # A SETTINGS frame: 3 bytes of length, then type 0x04.
    return "accepted" if len(reply) >= 4 and reply[3] == 0x04 else "refused: no HTTP/2 answer"


def _static_app(app_id: str, folder: Path, files: dict[str, str], **kwargs) -> DaprApp:
    """An app serving ``files`` as methods (GET /<name>), started with ``start_app``'s ``kwargs``."""
    return start_app(app_id, _static_command(folder, files), **kwargs)


def mtls(protect: bool = True) -> Drill:
    """Two sidecars with certificates from sentry call each other; the callee
    shows its SPIFFE id; a session without a certificate, or with a forged
    one naming the caller, is refused. Unprotected: no sentry, no mTLS."""
    caller_id, callee_id = unique_name("mtls-caller"), unique_name("mtls-callee")
    calls: list[tuple[str, str]] = []
    apps: list[DaprApp] = []
    authority = ca.start_sentry() if protect else None
    extra: _Certified = (
        {"sidecar_args": authority.sidecar_args(), "sidecar_env": authority.sidecar_env()} if authority else {}
    )
    try:
        with tempfile.TemporaryDirectory(prefix="mtls-drill-") as tmp:
            apps.append(_static_app(callee_id, Path(tmp), {"hello": "hello"}, components=[], **extra))
            apps.append(start_app(caller_id, components=[], **extra))
            callee = apps[0]
            through = sidecar.get(apps[1], sidecar.invoke_path(callee_id, "hello"), timeout=TIMEOUT_S)
            calls.append((f"{caller_id} calls {callee_id} through its sidecar", f"HTTP {through.status_code}"))
            cert = ca.peer_certificate(callee.internal_port)
            want = f"spiffe://public/ns/default/{callee_id}"
            calls.append(
                ("callee's certificate", f"{cert.spiffe_id}, valid {cert.lifetime}" if cert else "none (plain TCP)")
            )
            plain = _h2_session(callee.internal_port, tls=False)
            bare = _h2_session(callee.internal_port, tls=True)
            forged = _h2_session(
                callee.internal_port, tls=True, identity=ca.forged_identity(f"spiffe://public/ns/default/{caller_id}")
            )
            calls += [
                ("session in plain text", plain),
                ("TLS without a certificate", bare),
                ("TLS with a forged certificate naming the caller", forged),
            ]
    finally:
        for app in apps:
            stop_app(app)
        if authority:
            ca.stop_sentry(authority)
    holds = (
        through.status_code == 200
        and cert is not None
        and cert.spiffe_id == want
        and all(result.startswith("refused") for result in (plain, bare, forged))
    )
    return Drill("mTLS", holds=holds, calls=calls)


def _private_names(spec: HomeSpec, prefix: str) -> tuple[str, dict[str, str]]:
    """A suffix of this drill only, and the spec's agents under it (app id -> private name)."""
    suffix = unique_name(prefix).rsplit("-", 1)[-1] + secrets.token_hex(2)
    return suffix, {a.app_id: f"{a.app_id}-{suffix}" for a in spec.agents}


def _private_names_and_config(spec: HomeSpec, callee: str) -> tuple[dict[str, str], dict]:
    """The spec's agents under names of this drill only (app id -> private name), and ``callee``'s
    Configuration as the native home renders it for those names."""
    from lab_env.core.ports import free_ports
    from lab_env.marketplace.homes.native import configurations
    from lab_env.marketplace.homes.spec import isolated

    suffix, name = _private_names(spec, "acl")
    private = isolated(spec, suffix, free_ports(len(spec.agents)))
    return name, configurations(private)[f"{name[callee]}.yaml"]


def access_matrix(
    spec: HomeSpec, callee: str, calls: list[tuple[str, str]], protect: bool = True
) -> dict[tuple[str, str], int]:
    """Each (caller, method) call to ``callee``, made through real sidecars
    with mTLS certificates from sentry, against the callee's Configuration as
    the native home renders it from ``spec``: (caller, method) -> HTTP status.
    The spec's agents run under private names, so nothing else is disturbed."""
    name, config = _private_names_and_config(spec, callee)
    if not protect:
        config = {**config, "spec": {k: v for k, v in config["spec"].items() if k != "accessControl"}}
    codes: dict[tuple[str, str], int] = {}
    apps: list[DaprApp] = []
    authority = ca.start_sentry()
    extra: _Certified = {"sidecar_args": authority.sidecar_args(), "sidecar_env": authority.sidecar_env()}
    try:
        with tempfile.TemporaryDirectory(prefix="acl-drill-") as tmp:
            config_file = Path(tmp) / "callee-config.yaml"
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            methods = {method: method for _, method in calls}
            apps.append(
                _static_app(name[callee], Path(tmp) / "www", methods, components=[], config=config_file, **extra)
            )
            callers = {}
            for caller in dict.fromkeys(c for c, _ in calls):
                callers[caller] = start_app(name[caller], components=[], **extra)
                apps.append(callers[caller])
            for caller, method in calls:
                response = sidecar.get(callers[caller], sidecar.invoke_path(name[callee], method), timeout=TIMEOUT_S)
                codes[(caller, method)] = response.status_code
    finally:
        for app in apps:
            stop_app(app)
        ca.stop_sentry(authority)
    return codes


def access_control(protect: bool = True) -> Drill:
    """A callee that lets only ``caller`` call only ``hello``: the allowed
    call passes; another method, and another app, get 403. Needs mTLS: the
    caller's identity is the SPIFFE id in its certificate."""
    from lab_env.marketplace.homes.spec import load

    spec = load(
        {
            "home": "drill",
            "image": "drill:1",
            "agents": [
                {"app_id": "callee", "app": "drill:app", "port": 8001, "callers": {"caller": ["hello"]}},
                {"app_id": "caller", "app": "drill:app", "port": 8002},
                {"app_id": "stranger", "app": "drill:app", "port": 8003},
            ],
        }
    )
    codes = access_matrix(spec, "callee", [("caller", "hello"), ("caller", "refund"), ("stranger", "hello")], protect)
    return Drill(
        "access control",
        holds=codes == {("caller", "hello"): 200, ("caller", "refund"): 403, ("stranger", "hello"): 403},
        calls=[(f"{caller} calls {method}", f"HTTP {code}") for (caller, method), code in codes.items()],
    )


class ObservedCall(TypedDict):
    """One kind of call an audit saw: who called which agent's method, the HTTP status it got, how often.
    A plain mapping, so that a check can hand it to a graded kernel as JSON."""

    caller: str
    callee: str
    method: str
    status: int
    count: int


# A day of the marketplace's service invocations as its agents' code makes them: (caller, callee, method, times).
# Scripted here: the lab's agents talk through actors and pub/sub, so this day stands in for their direct calls.
MARKET_DAY: tuple[tuple[str, str, str, int], ...] = (
    ("mediator", "products", "Stock", 3),
    ("mediator", "products", "Reserve", 2),
    ("mediator", "products", "Release", 1),
    ("buyers", "products", "Stock", 4),
    ("buyers", "products", "Price", 1),  # a leftover in the buyers' code: products serves no Price
    ("buyers", "mediator", "Negotiate", 2),
    ("mediator", "sellers", "Offer", 2),
)
# The methods each agent serves in the audit (an agent not named here serves none).
SERVED: dict[str, tuple[str, ...]] = {
    "products": ("Stock", "Reserve", "Release"),
    "mediator": ("Negotiate",),
    "sellers": ("Offer",),
}
# Audit mode: no access-control policy, and metrics that keep each call's path (the method it names).
AUDIT_CONFIG = {
    "apiVersion": "dapr.io/v1alpha1",
    "kind": "Configuration",
    "metadata": {"name": "audit"},
    "spec": {"metrics": {"enabled": True, "http": {"increasedCardinality": True}}},
}
REQUESTS_METRIC = "dapr_http_server_request_count"  # a sidecar's count of its app's calls to its API


def _static_command(folder: Path, files: Mapping[str, str]) -> list[str]:
    """An app serving ``files`` as methods (GET /<name>): any HTTP server stands in for an agent."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body)
    return [sys.executable, "-m", "http.server", "{app_port}", "--bind", "127.0.0.1", "--directory", str(folder)]


def audit_calls(raw: Mapping | HomeSpec, day: Sequence[tuple[str, str, str, int]] = MARKET_DAY) -> list[ObservedCall]:
    """What each agent calls, as its own sidecar counted it.

    The agents of ``raw`` run under private names on a control plane with
    mTLS and **no** access-control policy ("audit mode", this lab's name for
    it): each gets a sidecar, and each that serves methods (SERVED) an app
    answering them. ``day`` is replayed, every call from its caller's
    sidecar. Then each caller's sidecar is asked for its metrics, and every
    service invocation it made becomes an ObservedCall. Calls of agents
    missing from the spec are left out. If the metrics do not count exactly
    the calls made (a daprd that labels paths differently), it says so
    rather than return a partial audit.
    """
    from lab_env.errors import LabEnvError
    from lab_env.marketplace.homes.spec import load
    from lab_env.runtime import metrics
    from lab_env.runtime.apps import start_apps, stop_apps

    spec = raw if isinstance(raw, HomeSpec) else load(dict(raw))
    ids = {a.app_id for a in spec.agents}
    day = [call for call in day if call[0] in ids and call[1] in ids]
    _, name = _private_names(spec, "audit")
    agent_of = {private: agent for agent, private in name.items()}
    involved = list(dict.fromkeys(agent for call in day for agent in call[:2]))
    observed: list[ObservedCall] = []
    authority = ca.start_sentry()
    try:
        with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
            config = Path(tmp) / "audit.yaml"
            config.write_text(yaml.safe_dump(AUDIT_CONFIG, sort_keys=False))
            options: dict[str, dict[str, object]] = {}
            for agent in involved:
                served = SERVED.get(agent, ())
                command = _static_command(Path(tmp) / agent, {m: m for m in served}) if served else None
                options[name[agent]] = {
                    "command": command,
                    "components": [],
                    "config": config,
                    "sidecar_args": authority.sidecar_args(),
                    "sidecar_env": authority.sidecar_env(),
                }
            apps = {agent_of[private]: app for private, app in start_apps(options).items()}
            try:
                for caller, callee, method, times in day:
                    for _ in range(times):
                        sidecar.get(apps[caller], sidecar.invoke_path(name[callee], method), timeout=TIMEOUT_S)
                for caller in dict.fromkeys(call[0] for call in day):
                    for labels, value in metrics.series(apps[caller], REQUESTS_METRIC):
                        target = sidecar.invoked(labels.get("path", ""))
                        if target and target[0] in agent_of:
                            callee, method = agent_of[target[0]], target[1]
                            status = int(labels["status"])
                            observed.append(
                                ObservedCall(
                                    caller=caller, callee=callee, method=method, status=status, count=int(value)
                                )
                            )
            finally:
                stop_apps(apps.values())  # before their folder goes
    finally:
        ca.stop_sentry(authority)
    made: dict[tuple[str, str, str], int] = {}
    for caller, callee, method, times in day:
        made[(caller, callee, method)] = made.get((caller, callee, method), 0) + times
    counted: dict[tuple[str, str, str], int] = {}
    for c in observed:
        counted[(c["caller"], c["callee"], c["method"])] = (
            counted.get((c["caller"], c["callee"], c["method"]), 0) + c["count"]
        )
    if counted != made:
        raise LabEnvError(
            f"the audit's metrics counted {sum(counted.values())} calls where {sum(made.values())} were made",
            f"check that this daprd labels {REQUESTS_METRIC} with each call's path (metrics.http.increasedCardinality)",
        )
    return sorted(observed, key=lambda c: (c["callee"], c["caller"], c["method"], c["status"]))


@dataclass
class PolicyCall:
    caller: str
    how: str  # "service invocation" or "actor API"
    method: str
    status: int
    answer: str

    def __str__(self) -> str:
        return f"{self.caller:>8} -> {self.method} by {self.how}: HTTP {self.status} {self.answer}".rstrip()


PRODUCT_HOST = "lab_env.marketplace.agents.product_host:app"


def actor_calls_past_policy(
    raw: Mapping | HomeSpec, *, callee: str = "products", callers: Sequence[str] = ("mediator", "buyers")
) -> list[PolicyCall]:
    """The real products agent (its ProductActor host) behind the Configuration ``raw`` renders for it, on a
    control plane with mTLS, and a sidecar per caller on the same plane. Each caller calls ``Reserve`` by
    service invocation, which the policy governs, and through the actor API, which it does not."""
    from lab_env.core.paths import REPO_ROOT
    from lab_env.marketplace.homes.spec import load
    from lab_env.runtime import secure_plane
    from lab_env.runtime.actors import actor_type_in
    from lab_env.runtime.apps import uvicorn_command

    spec = raw if isinstance(raw, HomeSpec) else load(dict(raw))
    name, config = _private_names_and_config(spec, callee)
    plane_name = unique_name(f"actor-acl-{secrets.token_hex(2)}")  # ends in the run token, as lab-env down expects
    apps: list[DaprApp] = []
    calls: list[PolicyCall] = []
    try:
        plane = secure_plane.start_plane(plane_name)
        certified: _Certified = {"sidecar_args": plane.sidecar_args(), "sidecar_env": plane.sidecar_env()}
        with tempfile.TemporaryDirectory(prefix="actor-acl-") as tmp:
            config_file = Path(tmp) / "products-config.yaml"
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            host = start_app(
                name[callee], uvicorn_command(PRODUCT_HOST), cwd=REPO_ROOT, components=["statestore"],
                config=config_file, **certified,
            )  # fmt: skip
            apps.append(host)
            product = actor_type_in(host, "ProductActor")
            for caller in callers:
                apps.append(start_app(name[caller], components=[], **certified))
                app, item = apps[-1], f"sku-{caller}"
                order = {"order_id": f"drill-{caller}", "quantity": 1}
                invoked = sidecar.post(app, sidecar.invoke_path(name[callee], "Reserve"), json=order, timeout=TIMEOUT_S)
                calls.append(PolicyCall(caller, "service invocation", "Reserve", invoked.status_code, _brief(invoked)))
                sidecar.put(app, sidecar.actor_method_path(product, item, "Restock"), json=3, timeout=TIMEOUT_S)
                reserved = sidecar.put(
                    app, sidecar.actor_method_path(product, item, "Reserve"), json=order, timeout=TIMEOUT_S
                )
                method = f"ProductActor {item} Reserve"
                calls.append(PolicyCall(caller, "actor API", method, reserved.status_code, _brief(reserved)))
    finally:
        for app in apps:
            stop_app(app)
        secure_plane.stop_plane(plane_name)
    return calls


def _brief(response) -> str:
    """The sidecar's answer in a few words: the app's JSON, or the error code Dapr gives."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:60]
    if isinstance(body, dict) and "errorCode" in body:
        return body["errorCode"]
    return json.dumps(body)[:60]
