"""The agent-home spec: one declarative file describing the marketplace's
agents, rendered into each home (native.py: `dapr run -f`; kube.py:
Kubernetes manifests and Dapr custom resources).

    home: marketplace                 # names the home (the Kubernetes namespace)
    image: marketplace-agents:0.1.0   # the container image every agent runs from
    components:                       # Dapr components, and which agents may use each
      statestore: {type: state.redis, actors: true, scopes: [products, mediator]}
    secrets: [openai-api-key]         # secret names; values never live in the spec
    agents:
      - app_id: products
        app: lab_env.marketplace.agents.product_host:app   # the ASGI app uvicorn serves
        port: 8000
        replicas: 2
        components: [statestore]
        callers: {mediator: [Stock, Reserve]}  # who may invoke which methods (all else denied)
        health: /healthz
        resources: {cpu: 250m, memory: 256Mi}
        scale: {min: 1, max: 5, cpu_percent: 70, memory_percent: 80}
        env: {LOG_LEVEL: info}                  # plain settings (never secrets: those go under secrets)

``load`` checks it and says, in one line, what is wrong and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_env.errors import LabEnvError

# Dapr app ids and Kubernetes object names: DNS labels.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi)?$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# A variable named like these holds a secret: it belongs in the secret store.
_SECRET_LIKE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD")
# Variables that change how a process starts or where it connects (the loader,
# the interpreter, uvicorn, the shell, proxies, certificates, the model), or
# that Dapr and lab_env set themselves: a spec setting LD_PRELOAD or
# UVICORN_APP_DIR would run its own code in whatever process starts the home,
# a grader's too.
_RESERVED_ENV = re.compile(
    r"^(LD_|PYTHON|UVICORN_|DAPR_|APP_|LAB_|GCONV|MALLOC_|GLIBC_|SSL_|OPENAI_|NODE_|JAVA_|"
    r"(PATH|HOME|SHELL|IFS|ENV|BASH_ENV|KUBECONFIG|LOCPATH|HOSTALIASES|TMPDIR|"
    r"(HTTP|HTTPS|ALL|NO)_PROXY|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE)$)"
)
# Component types that reach the files or run code on the machine that starts
# the home (a grader's, when lab 05 is graded): a home's components are
# networked services, and its secret store is the home's own.
_HOST_COMPONENT = re.compile(
    r"^(bindings\.(localstorage|wasm)|state\.sqlite|secretstores\.|middleware\.|nameresolution\.)"
)
# Settings that daprd reads as a file path when they are not PEM text (bindings.http's
# MTLSRootCA, MTLSClientCert, MTLSClientKey; Dapr reads metadata keys in any case).
_FILE_OR_PEM = re.compile(r"^mtls", re.IGNORECASE)


@dataclass(frozen=True)
class Scale:
    min: int
    max: int
    cpu_percent: int | None = None
    memory_percent: int | None = None


@dataclass(frozen=True)
class Agent:
    app_id: str
    app: str
    port: int
    replicas: int = 1
    components: tuple[str, ...] = ()
    callers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    health: str = "/healthz"
    resources: dict[str, str] = field(default_factory=dict)
    scale: Scale | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    name: str
    type: str
    scopes: tuple[str, ...]
    actors: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HomeSpec:
    home: str
    image: str
    agents: tuple[Agent, ...]
    components: dict[str, Component]
    secrets: tuple[str, ...] = ()

    def agent(self, app_id: str) -> Agent:
        return next(a for a in self.agents if a.app_id == app_id)


def _fail(where: str, problem: str, fix: str) -> LabEnvError:
    return LabEnvError(f"agent-home spec, {where}: {problem}", fix)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _fail(
            where, f"{value!r} is not a valid name", "use lowercase letters, digits and hyphens, starting with a letter"
        )
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(
            where, f"{value!r} is not a whole number from {low} to {high}", f"give a number from {low} to {high}"
        )
    return value


def _known(raw: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}", f"use only {', '.join(sorted(allowed))}")


def _scale(raw: Any, where: str, replicas: int) -> Scale | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail(where, "scale must be a mapping", "write scale: {min: 1, max: 5, cpu_percent: 70}")
    _known(raw, {"min", "max", "cpu_percent", "memory_percent"}, where)
    low = _int(raw.get("min", replicas), f"{where}.min", 1, 1000)
    high = _int(raw.get("max"), f"{where}.max", 1, 1000)
    if high < low:
        raise _fail(where, f"max {high} is below min {low}", "make max at least min")
    cpu = raw.get("cpu_percent")
    memory = raw.get("memory_percent")
    if cpu is None and memory is None:
        raise _fail(where, "no metric to scale on", "give cpu_percent, memory_percent or both")
    return Scale(
        low,
        high,
        None if cpu is None else _int(cpu, f"{where}.cpu_percent", 1, 100),
        None if memory is None else _int(memory, f"{where}.memory_percent", 1, 100),
    )


def _agent(raw: Any, index: int) -> Agent:
    where = f"agents[{index}]"
    if not isinstance(raw, dict):
        raise _fail(
            where, "an agent must be a mapping", "see the example at the top of lab_env/marketplace/homes/spec.py"
        )
    _known(
        raw,
        {"app_id", "app", "port", "replicas", "components", "callers", "health", "resources", "scale", "env"},
        where,
    )
    app_id = _name(raw.get("app_id"), f"{where}.app_id")
    where = f"agent {app_id}"
    target = raw.get("app")
    if not isinstance(target, str) or not _TARGET.match(target):
        raise _fail(where, f"app {target!r} is not module:attribute", "write app: package.module:app")
    replicas = _int(raw.get("replicas", 1), f"{where}.replicas", 1, 1000)
    callers_raw = raw.get("callers") or {}
    if not isinstance(callers_raw, dict):
        raise _fail(where, "callers must map an app id to a list of methods", "write callers: {mediator: [Stock]}")
    callers = {}
    for caller, methods in callers_raw.items():
        _name(caller, f"{where}.callers")
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) and m for m in methods):
            raise _fail(
                where, f"callers.{caller} must be a non-empty list of method names", "list the methods it may call"
            )
        callers[caller] = tuple(methods)
    resources = raw.get("resources") or {}
    if (
        not isinstance(resources, dict)
        or set(resources) - {"cpu", "memory"}
        or not all(isinstance(v, str) and _QUANTITY.match(v) for v in resources.values())
    ):
        raise _fail(
            where,
            f"resources {resources!r} are not cpu/memory quantities",
            "write resources: {cpu: 250m, memory: 256Mi}",
        )
    health = raw.get("health", "/healthz")
    if not isinstance(health, str) or not health.startswith("/"):
        raise _fail(where, f"health {health!r} is not a path", "write health: /healthz")
    components = raw.get("components") or []
    if not isinstance(components, list):
        raise _fail(where, "components must be a list of component names", "write components: [statestore]")
    env = raw.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and _ENV_NAME.fullmatch(k) for k in env):
        raise _fail(where, f"env {env!r} is not a mapping of VARIABLE_NAMES to values", "write env: {LOG_LEVEL: info}")
    secret_like = next((k for k in env if _SECRET_LIKE.search(k)), None)
    if secret_like:
        raise _fail(
            where, f"env {secret_like} looks like a secret", "list it under secrets and read it from the secret store"
        )
    reserved = next((k for k in env if _RESERVED_ENV.match(k)), None)
    if reserved and reserved != "LAB_WORKFLOW_MODULE":  # the mediator's own setting
        raise _fail(
            where,
            f"env {reserved} is not the agent's to set: it changes how the process starts, or lab_env sets it",
            "give the setting a name of its own, like LOG_LEVEL",
        )
    return Agent(
        app_id,
        target,
        _int(raw.get("port"), f"{where}.port", 1024, 65535),
        replicas,
        tuple(_name(c, f"{where}.components") for c in components),
        callers,
        health,
        dict(resources),
        _scale(raw.get("scale"), f"{where}.scale", replicas),
        {k: str(v) for k, v in env.items()},
    )


def _pem_or_secret(value: str) -> bool:
    return value.lstrip().startswith("-----BEGIN ") or value.startswith("secret:")


def _component(name: str, raw: Any) -> Component:
    where = f"component {name}"
    if not isinstance(raw, dict):
        raise _fail(where, "a component must be a mapping", "write statestore: {type: state.redis, scopes: [...]}")
    _known(raw, {"type", "scopes", "actors", "metadata"}, where)
    kind = raw.get("type")
    if not isinstance(kind, str) or not re.match(r"^[a-z]+\.[a-z0-9.-]+$", kind):
        raise _fail(
            where, f"type {kind!r} is not a Dapr component type", "write a type like state.redis or pubsub.kafka"
        )
    if _HOST_COMPONENT.match(kind):
        raise _fail(
            where,
            f"type {kind} reaches the files or code of the machine the home runs on",
            "use a networked component (state.redis, pubsub.kafka, bindings.http); list secrets under secrets",
        )
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _fail(where, "metadata must be a mapping", "write metadata: {redisHost: ...}")
    as_file = next((k for k, v in metadata.items() if _FILE_OR_PEM.match(str(k)) and not _pem_or_secret(str(v))), None)
    if as_file:
        raise _fail(
            where,
            f"{as_file} names a file on the machine the home runs on",
            f"give {as_file} as PEM text, or as secret:NAME from the secret store",
        )
    scopes = raw.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise _fail(where, "no scopes: every agent could use it", "list the app ids that may use it (deny by default)")
    return Component(
        _name(name, where),
        kind,
        tuple(_name(s, f"{where}.scopes") for s in scopes),
        bool(raw.get("actors", False)),
        {str(k): str(v) for k, v in metadata.items()},
    )


def load(source: Path | str | dict) -> HomeSpec:
    """Read and check a spec (a YAML file, or its already parsed mapping)."""
    if isinstance(source, dict):
        raw = source
    else:
        import yaml

        path = Path(source)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as err:
            raise LabEnvError(f"cannot read the agent-home spec {path}: {err.strerror}", "check the path") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise LabEnvError(f"{path.name}{line}: not valid YAML", "fix the indentation or quoting there") from None
    if not isinstance(raw, dict):
        raise _fail(
            "top level", "the spec must be a mapping", "start from the example in lab_env/marketplace/homes/spec.py"
        )
    _known(raw, {"home", "image", "components", "secrets", "agents"}, "top level")
    home = _name(raw.get("home"), "home")
    image = raw.get("image")
    if not isinstance(image, str) or ":" not in image or image.endswith(":latest"):
        raise _fail("image", f"{image!r} has no pinned tag", "write image: name:version (never :latest)")
    components = {name: _component(name, body) for name, body in (raw.get("components") or {}).items()}
    agents_raw = raw.get("agents")
    if not isinstance(agents_raw, list) or not agents_raw:
        raise _fail("agents", "no agents", "list at least one agent")
    agents = tuple(_agent(a, i) for i, a in enumerate(agents_raw))
    ids = [a.app_id for a in agents]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise _fail(f"agent {duplicate}", "app id used twice", "give every agent its own app_id")
    ports = [a.port for a in agents]
    clash = next((p for p in ports if ports.count(p) > 1), None)
    if clash:
        raise _fail("agents", f"port {clash} used by two agents", "give every agent its own port")
    for agent in agents:
        for name in agent.components:
            if name not in components:
                raise _fail(
                    f"agent {agent.app_id}",
                    f"uses component {name!r}, which the spec does not define",
                    f"define it under components, or use one of {sorted(components)}",
                )
            if agent.app_id not in components[name].scopes:
                raise _fail(
                    f"agent {agent.app_id}",
                    f"uses component {name!r} but is not in its scopes",
                    f"add {agent.app_id} to components.{name}.scopes",
                )
        for caller in agent.callers:
            if caller not in ids:
                raise _fail(
                    f"agent {agent.app_id}", f"callers names {caller!r}, which is not an agent", f"use one of {ids}"
                )
    for component in components.values():
        stranger = next((s for s in component.scopes if s not in ids), None)
        if stranger:
            raise _fail(
                f"component {component.name}", f"scopes name {stranger!r}, which is not an agent", f"use one of {ids}"
            )
    actor_stores = [c.name for c in components.values() if c.actors]
    if len(actor_stores) > 1:
        raise _fail(
            "components", f"{actor_stores} are all marked actors: true", "mark one state store as the actor store"
        )
    secrets = raw.get("secrets") or []
    if not isinstance(secrets, list):
        raise _fail("secrets", "secrets must be a list of names", "write secrets: [openai-api-key]")
    return HomeSpec(home, image, agents, components, tuple(_name(s, "secrets") for s in secrets))


def isolated(spec: HomeSpec, suffix: str, ports: list[int]) -> HomeSpec:
    """The same home under names and ports nothing else uses: every app id,
    scope and caller gets ``-suffix``, and the agents take ``ports`` in order.
    Two runs of one spec (a notebook and its grader, two tests) never collide."""
    from dataclasses import replace

    if len(ports) < len(spec.agents):
        raise ValueError(f"{len(spec.agents)} agents need as many ports, got {len(ports)}")

    def rename(app_id: str) -> str:
        return f"{app_id}-{suffix}"

    agents = tuple(
        replace(a, app_id=rename(a.app_id), port=port, callers={rename(c): m for c, m in a.callers.items()})
        for a, port in zip(spec.agents, ports, strict=False)  # ports may hold more than the agents need
    )
    components = {n: replace(c, scopes=tuple(rename(s) for s in c.scopes)) for n, c in spec.components.items()}
    return replace(spec, home=f"{spec.home}-{suffix}", agents=agents, components=components)


def to_dict(spec: HomeSpec) -> dict:
    """The spec as the mapping ``load`` reads (load(to_dict(s)) == s)."""
    return {
        "home": spec.home,
        "image": spec.image,
        "components": {
            n: {"type": c.type, "scopes": list(c.scopes), "actors": c.actors, "metadata": dict(c.metadata)}
            for n, c in spec.components.items()
        },
        "secrets": list(spec.secrets),
        "agents": [
            {
                "app_id": a.app_id,
                "app": a.app,
                "port": a.port,
                "replicas": a.replicas,
                "components": list(a.components),
                "callers": {k: list(v) for k, v in a.callers.items()},
                "health": a.health,
                "resources": dict(a.resources),
                "env": dict(a.env),
                **({"scale": {k: v for k, v in vars(a.scale).items() if v is not None}} if a.scale else {}),
            }
            for a in spec.agents
        ],
    }
