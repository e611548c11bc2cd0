"""The container home: a Dockerfile per agent, and a compose file that runs
each agent next to its own daprd sidecar on the devcontainer's stack.

It runs under real `docker compose` wherever a Docker engine answers: in the
devcontainer, and here on lab-env's own engine with the bakery's images
(tests/marketplace/test_container_home_live.py). The Dockerfile rules in
``dockerfile_problems`` are also checked without Docker (Debian has no hadolint).

Each agent has a pod: a tiny container that only holds the network namespace,
which the agent and its sidecar both join (``network_mode: service:<agent>-pod``),
as a Kubernetes pod's pause container does. The agent listens on 127.0.0.1 only
and daprd reaches it there. A namespace owned by the agent itself would die with
it: after a restart its sidecar would be left in a namespace nobody else is in.
Components and configurations are the native home's files, mounted read-only;
the model key reaches only the sidecar (its local.env secret store), from the
environment of whoever runs compose. Images come from the set
``LAB_ENV_IMAGES`` chooses (lab_env/stack/images/catalog.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path

import yaml

from lab_env.core.names import run_token
from lab_env.core.paths import REPO_ROOT
from lab_env.core.probes import wait_until
from lab_env.core.versions import pins
from lab_env.marketplace.homes import native
from lab_env.marketplace.homes.spec import Agent, HomeSpec
from lab_env.stack.engine import Engine
from lab_env.stack.images.catalog import choose

AGENT_UID = 10001
SIDECAR_HTTP_PORT = 3500
SIDECAR_GRPC_PORT = 50001
# The devcontainer's services, by their compose names (devcontainer/compose.yaml).
PLACEMENT = "placement:50005"
SCHEDULER = "scheduler:50006"
# Restarted when it exits or is killed, not after `docker compose stop`.
RESTART = "unless-stopped"


def dockerfile(agent: Agent, spec: HomeSpec) -> str:
    """Multi-stage, pinned base, non-root, with a healthcheck on the agent's health route."""
    base = choose(pins().image("agent_base"))
    health = f"http://127.0.0.1:{agent.port}{agent.health}"
    probe = f"import urllib.request; urllib.request.urlopen({health!r}, timeout=2)"
    return "\n".join(
        [
            f"# Agent {agent.app_id} of the {spec.home} home, rendered by lab_env.marketplace.homes.container.",
            f"FROM {base} AS build",
            "WORKDIR /src",
            "COPY pyproject.toml uv.lock README.md ./",
            "# The dependencies first, in a layer of their own: a change to the code rebuilds only the last step.",
            "RUN mkdir lab_env && touch lab_env/__init__.py \\",
            "    && pip install --no-cache-dir --prefix=/install . && rm -rf lab_env",
            "COPY lab_env ./lab_env",
            "RUN pip install --no-cache-dir --no-deps --prefix=/install .",
            "",
            f"FROM {base}",
            f"RUN groupadd --system --gid {AGENT_UID} agent \\",
            f"    && useradd --system --uid {AGENT_UID} --gid agent --no-create-home agent",
            "COPY --from=build /install /usr/local",
            f"USER {AGENT_UID}:{AGENT_UID}",
            f"EXPOSE {agent.port}",
            f'HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["python", "-c", {_json_str(probe)}]',
            f'CMD ["python", "-m", "uvicorn", "{agent.app}", "--host", "127.0.0.1", "--port", "{agent.port}"]',
            "",
        ]
    )


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


def _cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


def _memory(quantity: str) -> str:
    units = {"Ki": "K", "Mi": "M", "Gi": "G"}
    return next((quantity[:-2] + short for suffix, short in units.items() if quantity.endswith(suffix)), quantity)


def compose(spec: HomeSpec) -> dict:
    """The compose project: per agent, its pod, its service and its daprd sidecar."""
    services: dict[str, dict] = {}
    for agent in spec.agents:
        pod = f"{agent.app_id}-pod"
        services[pod] = {
            "image": choose(pins().image("busybox")),
            # Holds the namespace and nothing else; `sleep` as PID 1 would ignore SIGTERM.
            "command": ["sleep", "2147483647"],
            "init": True,
            "read_only": True,
            "cap_drop": ["ALL"],
            "networks": ["lab"],
            "restart": RESTART,
        }
        service: dict = {
            # The repository: the image installs lab_env from it (pyproject.toml, uv.lock, lab_env/).
            "build": {"context": str(REPO_ROOT), "dockerfile": f"{{HOME_DIR}}/Dockerfile.{agent.app_id}"},
            "image": f"{spec.image.rsplit(':', 1)[0]}-{agent.app_id}:{spec.image.rsplit(':', 1)[1]}",
            "user": f"{AGENT_UID}:{AGENT_UID}",
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "environment": {
                **agent.env,
                "APP_ID": agent.app_id,
                # Actor types carry the run's token: fixed here, so a restarted agent hosts the
                # same types and finds its actors' state.
                "LAB_RUN_TOKEN": run_token(),
                "DAPR_HTTP_PORT": str(SIDECAR_HTTP_PORT),
                "DAPR_GRPC_PORT": str(SIDECAR_GRPC_PORT),
            },
            "network_mode": f"service:{pod}",
            "depends_on": [pod],
            "tmpfs": ["/tmp"],
            "restart": RESTART,
        }
        if agent.resources:
            limits = {}
            if "cpu" in agent.resources:
                limits["cpus"] = _cpus(agent.resources["cpu"])
            if "memory" in agent.resources:
                limits["memory"] = _memory(agent.resources["memory"])
            service["deploy"] = {"resources": {"limits": limits}}
        sidecar: dict = {
            "image": choose(pins().image("dapr")),
            "command": [
                "./daprd",
                "--app-id",
                agent.app_id,
                "--app-port",
                str(agent.port),
                "--app-channel-address",
                "127.0.0.1",
                "--dapr-http-port",
                str(SIDECAR_HTTP_PORT),
                "--dapr-grpc-port",
                str(SIDECAR_GRPC_PORT),
                "--placement-host-address",
                PLACEMENT,
                "--scheduler-host-address",
                SCHEDULER,
                "--resources-path",
                "/resources",
                "--config",
                f"/config/{agent.app_id}.yaml",
            ],
            "network_mode": f"service:{pod}",
            "volumes": ["./resources:/resources:ro", "./config:/config:ro"],
            "depends_on": [pod, agent.app_id],
            "read_only": True,
            "cap_drop": ["ALL"],
            "restart": RESTART,
        }
        needed = [
            name
            for name in spec.secrets
            if any(
                f"secret:{name}" in c.metadata.values() for c in spec.components.values() if c.name in agent.components
            )
        ]
        if needed:
            # Required, never defaulted: compose stops with this message when it is unset.
            sidecar["environment"] = {
                native.SECRET_PREFIX
                + native._env_var(name): f"${{{native._env_var(name)}:?export it before compose up}}"
                for name in needed
            }
        services[agent.app_id] = service
        services[f"{agent.app_id}-dapr"] = sidecar
    return {
        "services": services,
        # The devcontainer's own network, where redis, kafka, placement and scheduler are.
        "networks": {"lab": {"external": True, "name": "${LAB_NETWORK:-devcontainer_default}"}},
    }


def resources(spec: HomeSpec) -> dict[str, dict]:
    """The native home's components with the stack's addresses as the containers see them."""
    from lab_env.core.profile import CONTAINER, from_native

    moved = from_native(CONTAINER)
    out = {}
    for name, component in native.resources(spec).items():
        metadata = [
            {**m, "value": moved.get(m["value"], m["value"])} if "value" in m else m
            for m in component["spec"].get("metadata", [])
        ]
        out[name] = {**component, "spec": {**component["spec"], "metadata": metadata}}
    return out


def write(spec: HomeSpec, folder: Path) -> Path:
    """Dockerfiles, compose.yaml and the sidecars' files into ``folder``; returns compose.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub, files in (("resources", resources(spec)), ("config", native.configurations(spec))):
        (folder / sub).mkdir(exist_ok=True)
        for name, obj in files.items():
            (folder / sub / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    for agent in spec.agents:
        (folder / f"Dockerfile.{agent.app_id}").write_text(dockerfile(agent, spec))
    project = compose(spec)
    for service in project["services"].values():
        if "build" in service:  # Dockerfiles by absolute path: the build context is the repository
            service["build"]["dockerfile"] = service["build"]["dockerfile"].replace("{HOME_DIR}", str(folder.resolve()))
    path = folder / "compose.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


_SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)


def dockerfile_problems(text: str) -> list[str]:
    """The rules this project holds Dockerfiles to, checked without Docker.

    multi-stage; every base pinned to a tag (never latest or untagged); no
    ADD; no secret-looking ENV or ARG; a numeric non-root USER before CMD; a
    HEALTHCHECK; CMD in exec form.
    """
    lines = [
        line.strip()
        for line in text.replace("\\\n", " ").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    instr = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]
    problems = []
    froms = [arg.split()[0] for op, arg in instr if op == "FROM"]
    stages = {arg.split()[2].lower() for op, arg in instr if op == "FROM" and len(arg.split()) == 3}
    if len(froms) < 2:
        problems.append("not multi-stage: build in one stage, copy only the result into the final one")
    for image in froms:
        if image.lower() in stages:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if "@sha256:" not in image and (not tag or tag == "latest"):
            problems.append(f"base image {image} is not pinned to a version tag")
    if any(op == "ADD" for op, _ in instr):
        problems.append("ADD is used: COPY files, and fetch nothing at build time")
    for op, arg in instr:
        if op in ("ENV", "ARG") and _SECRETISH.search(arg.split("=")[0].split()[0] if arg else ""):
            problems.append(f"{op} {arg.split('=')[0].split()[0]} looks like a secret baked into the image")
    users = [index for index, (op, _) in enumerate(instr) if op == "USER"]
    cmds = [index for index, (op, _) in enumerate(instr) if op in ("CMD", "ENTRYPOINT")]
    final_stage = max((index for index, (op, _) in enumerate(instr) if op == "FROM"), default=0)
    final_users = [instr[index][1].split(":")[0] for index in users if index > final_stage]
    if not final_users or not final_users[-1].isdigit() or final_users[-1] == "0":
        problems.append("the final stage does not switch to a numeric non-root USER")
    elif cmds and max(users) > max(cmds):
        problems.append("USER comes after CMD")
    if not any(op == "HEALTHCHECK" for op, _ in instr):
        problems.append("no HEALTHCHECK")
    for index in cmds:
        if not instr[index][1].startswith("["):
            problems.append(f'{instr[index][0]} is in shell form: use the exec form ["..."] so signals reach the app')
    return problems


# --- running it ----------------------------------------------------------------------------

STACK_SERVICES = ("redis", "kafka", "placement", "scheduler")
# Safety nets against a hang, never pass/fail criteria on a busy machine.
HEALTHY_S = 300.0
BUILD_S = 1800.0


def compose_container(engine: Engine, project: str, service: str) -> str:
    """The first container of a compose service, found by compose's labels (docker-compose 1.x
    names it <project>_<service>_1, the compose plugin <project>-<service>-1); the 1.x name
    while it does not exist yet."""
    found = engine.docker(
        "ps", "-aq",
        "--filter", f"label=com.docker.compose.project={project}",
        "--filter", f"label=com.docker.compose.service={service}",
    ).stdout.split()  # fmt: skip
    return found[0] if found else f"{project}_{service}_1"


def health(engine: Engine, container: str) -> str:
    """A container's health: healthy, starting, unhealthy, "" (it has no check) or missing."""
    done = engine.docker("inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", container)
    return done.stdout.strip() if done.returncode == 0 else "missing"


def wait_healthy(engine: Engine, container: str | Callable[[], str], what: str) -> None:
    """Wait until ``container`` (a name or id, or a function giving one: it may not exist yet) is healthy."""
    name = container if callable(container) else (lambda: container)
    wait_until(
        lambda: health(engine, name()) == "healthy",
        HEALTHY_S,
        what,
        failure=lambda: engine.docker("logs", "--tail", "3", name()).stderr.strip(),
    )


def stack_up(engine: Engine, project: str) -> str:
    """The devcontainer's services (redis, kafka, placement, scheduler) from its compose file, in
    the chosen image set, up to healthy; the network name a home joins (LAB_NETWORK)."""
    from lab_env.stack.devcontainer import COMPOSE_FILE
    from lab_env.stack.images.catalog import compose_env

    images = compose_env()
    _require_images(engine, [images[key] for key in ("REDIS_IMAGE", "KAFKA_IMAGE", "DAPR_IMAGE", "BUSYBOX_IMAGE")])
    engine.compose(COMPOSE_FILE, project, "up", "-d", *STACK_SERVICES, env=compose_env(), timeout=BUILD_S)
    for service in STACK_SERVICES:
        wait_healthy(
            engine, partial(compose_container, engine, project, service), f"the {service} container to be healthy"
        )
    return f"{project}_default"


def _require_images(engine: Engine, refs: Iterable[str]) -> None:
    """Where nothing can be pulled (the local set), each image must be built: one line naming the build."""
    from lab_env.stack.images import bakery
    from lab_env.stack.images.catalog import image_set

    if image_set() == "local":
        for ref in dict.fromkeys(refs):
            bakery.require(engine, ref)


def stack_down(engine: Engine, project: str) -> None:
    from lab_env.stack.devcontainer import COMPOSE_FILE
    from lab_env.stack.images.catalog import compose_env

    engine.compose(COMPOSE_FILE, project, "down", "-v", env=compose_env(), timeout=300)


def home_up(engine: Engine, compose_file: Path, project: str, network: str, env: Mapping[str, str]) -> None:
    """A written home, built and started on ``network``, each agent up to healthy."""
    full = {"LAB_NETWORK": network, **env}
    services = yaml.safe_load(compose_file.read_text())["services"]
    bases = [line.split()[1] for f in compose_file.parent.glob("Dockerfile.*") for line in f.read_text().splitlines()
             if line.startswith("FROM ") and " AS " not in line]  # fmt: skip
    _require_images(engine, [*(svc["image"] for svc in services.values() if "build" not in svc), *bases])
    engine.compose(compose_file, project, "up", "-d", "--build", env=full, timeout=BUILD_S)
    for name, service in services.items():
        if "build" in service:
            wait_healthy(engine, partial(compose_container, engine, project, name), f"the {name} agent to be healthy")


def home_down(engine: Engine, compose_file: Path, project: str, env: Mapping[str, str]) -> None:
    engine.compose(compose_file, project, "down", "-v", env={"LAB_NETWORK": "unused", **env}, timeout=300)
