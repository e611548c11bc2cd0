"""`lab-env cluster up | status | down`: the Kubernetes cluster of the agent-homes lab.

Where a Docker engine answers (the devcontainer) it is kind, as below;
elsewhere `--runtime auto` picks the native control plane of
native_cluster.py (real Kubernetes processes, kwok's simulated nodes).

up    creates the kind cluster described by devcontainer/kind-config.yaml
      (unless it exists), installs Dapr on it with the Dapr Helm chart at the
      runtime version pinned in versions.toml, and makes the compose stack's
      Redis and Kafka reachable from its pods. Running it again repairs what
      is missing and refreshes the addresses.
down  deletes the cluster.

How pods reach Redis and Kafka. In the devcontainer, kind runs its node
inside the workspace container (docker-in-docker), so traffic from a pod
leaves through the workspace container, which is on the compose network.
`up` resolves the compose services `redis` and `kafka` there and creates, in
the apps' namespace (`--namespace`, default "default"), a Service of the same
name without a selector plus an EndpointSlice holding that address. Pods
then use the container profile's host names: redis:6379 and kafka:9092 (or
redis.<namespace>.svc.cluster.local), which is also the address Kafka
advertises. The addresses are read when `up` runs: after the compose stack
is recreated, run `lab-env cluster up` again. In the native profile Redis and
Kafka listen on 127.0.0.1 only, so no pod can reach them; `up` says so and
skips that step.

Needs docker with a running engine, kind, kubectl and helm. Whatever is
missing is reported as one line (a LabEnvError) naming what to install or
start, before anything is changed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab_env.core.paths import REPO_ROOT, logs_dir
from lab_env.core.profile import Profile, current
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError

KIND_CONFIG = REPO_ROOT / "devcontainer" / "kind-config.yaml"
DAPR_CHART_REPO = "https://dapr.github.io/helm-charts/"
DAPR_NAMESPACE = "dapr-system"
DOCKER_TIMEOUT_S = 20.0
MANAGED_BY = "lab-env"

_WHY = {
    "docker": "kind runs the cluster's node as a Docker container",
    "kind": "it creates the cluster",
    "kubectl": "it applies the Redis and Kafka Services",
    "helm": "it installs Dapr from the Dapr Helm chart",
}
_NAMESPACE_OK = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _one_line(text: str, limit: int = 200) -> str:
    """The last non-blank line of a command's output, whitespace collapsed."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def _how_to_get(tool: str) -> str:
    if tool == "docker":
        return "open this repo's devcontainer (it runs Docker in Docker), or install Docker Engine or Docker Desktop"
    return f"install {tool} {pins().tools[tool]} (the devcontainer image has it)"


def require_tool(name: str) -> str:
    """Path of ``name`` on PATH, or a one-line LabEnvError saying what to install."""
    path = shutil.which(name)
    if not path:
        raise LabEnvError(f"{name} is not installed ({_WHY.get(name, 'the cluster needs it')})", _how_to_get(name))
    return path


def require_docker() -> str:
    """The docker client, once its engine answers; else a one-line LabEnvError."""
    docker = require_tool("docker")
    fix = (
        "start it (Docker Desktop, or `sudo systemctl start docker`); "
        "in the devcontainer, rebuild it so docker-in-docker starts dockerd"
    )
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=DOCKER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabEnvError(
            f"the Docker engine did not answer `docker info` within {DOCKER_TIMEOUT_S:.0f}s", fix
        ) from None
    if done.returncode != 0 or not done.stdout.strip():
        reason = _one_line(done.stderr) or f"`docker info` exited {done.returncode}"
        raise LabEnvError(f"the Docker engine is not running ({reason})", fix)
    return docker


def cluster_name(config: Path = KIND_CONFIG) -> str:
    """The cluster's name, as the kind config file sets it."""
    import yaml

    try:
        doc = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise LabEnvError(
            f"cannot read the kind config {config} ({type(err).__name__})", "restore it with git"
        ) from None
    name = doc.get("name") if isinstance(doc, dict) else None
    if not name:
        raise LabEnvError(f"{config} sets no cluster name", "add `name: agent-homes` to it")
    return str(name)


def _run(argv: Sequence[str], what: str, stdin_text: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a short command (``env``: extra variables); its output is appended to the cluster log."""
    import os

    log = logs_dir() / "cluster.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        input=stdin_text,
        check=False,
        stdin=None if stdin_text is not None else subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        reason = _one_line(done.stderr) or _one_line(done.stdout) or f"exit {done.returncode}"
        raise LabEnvError(f"{what} failed: {reason}", f"see {log}")
    return done.stdout


def _run_long(argv: Sequence[str], what: str, log_name: str) -> None:
    """Run a slow command with a progress bar; full output in its own log."""
    from lab_env.core.progress_bar import run_with_progress

    run_with_progress(argv, what, logs_dir() / log_name, fix="fix what the log names, then `lab-env cluster up` again")


def stack_endpoints(profile: Profile) -> dict[str, tuple[str, int]]:
    """Service name -> (IPv4 address, port) of the compose services pods must reach."""
    targets = {"redis": (profile.redis_host, profile.redis_port), "kafka": (profile.kafka_host, profile.kafka_port)}
    found = {}
    for name, (host, port) in targets.items():
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise LabEnvError(
                f"cannot resolve {host} ({err.strerror})", "is the compose stack up? `lab-env doctor` checks it"
            ) from None
        found[name] = (str(infos[0][4][0]), port)
    return found


def mirror_manifest(endpoints: dict[str, tuple[str, int]], namespace: str) -> dict[str, Any]:
    """A kubectl List: per service a selector-less Service and its EndpointSlice."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
    items: list[dict[str, Any]] = []
    if namespace != "default":
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for name, (address, port) in endpoints.items():
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"ports": [{"name": name, "port": port, "targetPort": port, "protocol": "TCP"}]},
            }
        )
        items.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{MANAGED_BY}",
                    "namespace": namespace,
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    },
                },
                "addressType": "IPv4",
                "ports": [{"name": name, "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def up(namespace: str = "default", timeout: str = "10m") -> list[str]:
    """Create (or repair) the cluster, install Dapr, expose Redis and Kafka. Returns a summary."""
    if not _NAMESPACE_OK.match(namespace):
        raise LabEnvError(
            f"namespace {namespace!r} is not a valid Kubernetes name", "use lowercase letters, digits and hyphens"
        )
    require_docker()
    kind, kubectl, helm = (require_tool(tool) for tool in ("kind", "kubectl", "helm"))
    name = cluster_name()
    context = f"kind-{name}"
    if name not in _run([kind, "get", "clusters"], "listing kind clusters").split():
        _run_long(
            [kind, "create", "cluster", "--config", str(KIND_CONFIG), "--wait", "120s"],
            f"creating kind cluster {name}",
            "cluster-create.log",
        )
    # Also after a container rebuild, when the cluster survived but ~/.kube did not.
    _run([kind, "export", "kubeconfig", "--name", name], "writing the kubeconfig")

    version = pins().dapr_runtime
    _run_long(
        [
            helm,
            "upgrade",
            "--install",
            "dapr",
            "dapr",
            "--repo",
            DAPR_CHART_REPO,
            "--version",
            version,
            "--namespace",
            DAPR_NAMESPACE,
            "--create-namespace",
            "--kube-context",
            context,
            "--wait",
            "--timeout",
            timeout,
        ],
        f"installing Dapr {version} (Helm chart)",
        "cluster-dapr.log",
    )
    summary = [f"kind cluster {name} is up (kubectl context {context}), Dapr {version} in namespace {DAPR_NAMESPACE}"]

    profile = current()
    if profile.name != "container":
        summary.append(
            "native profile: Redis and Kafka listen on 127.0.0.1 only, so pods cannot reach them; "
            "use the devcontainer (LAB_ENV_PROFILE=container) for the agent-homes lab"
        )
        return summary
    endpoints = stack_endpoints(profile)
    _run(
        [kubectl, "--context", context, "apply", "-f", "-"],
        "making Redis and Kafka reachable from the cluster",
        stdin_text=json.dumps(mirror_manifest(endpoints, namespace)),
    )
    reach = ", ".join(f"{svc}:{port} -> {address}" for svc, (address, port) in endpoints.items())
    summary.append(
        f"pods in namespace {namespace} reach {reach}; after the compose stack restarts, run `lab-env cluster up` again"
    )
    return summary


def down() -> bool:
    """Delete the cluster. True if there was one."""
    require_docker()
    kind = require_tool("kind")
    name = cluster_name()
    if name not in _run([kind, "get", "clusters"], "listing kind clusters").split():
        return False
    _run([kind, "delete", "cluster", "--name", name], f"deleting kind cluster {name}")
    return True


def docker_usable() -> bool:
    """Docker's CLI is installed and its engine answers."""
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        return (
            subprocess.run([docker, "info"], capture_output=True, timeout=DOCKER_TIMEOUT_S, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def runtime_choice(wanted: str) -> tuple[str, str]:
    """The cluster runtime for ``wanted`` (auto, kind or native), and why, in a few words."""
    if wanted != "auto":
        return wanted, "asked for"
    if docker_usable():
        images = "images built here" if local_images() else "upstream images, pulled"
        return "kind", f"a Docker engine answers; kind runs on {images}"
    # lab-env's own engine could run kind here too, but its first build takes 15 to 25 minutes: asked for only.
    return "native", "no Docker engine answers; `LAB_ENV_IMAGES=local lab-env cluster up --runtime kind` builds kind"


def choose_runtime(wanted: str) -> str:
    """kind where Docker runs (the devcontainer), else the native control plane."""
    return runtime_choice(wanted)[0]


def exists() -> bool:
    """Whether the kind cluster of devcontainer/kind-config.yaml exists."""
    kind = require_tool("kind")
    return cluster_name() in _run([kind, "get", "clusters"], "listing kind clusters").split()


# ---------------------------------------------------------------------------
# kind where nothing can be pulled (LAB_ENV_IMAGES=local): the node image and
# every image it starts are built here (lab_env/stack/images/kind_node.py),
# and so is kind itself, at [kind_node] kind in versions.toml.

LOCAL_CONFIG_NAME = "kind-config.local.yaml"
KIND_NETWORK = "kind"  # the Docker network kind puts its nodes on
DEFAULT_WORKERS = 2


def metrics_server_manifest(kubectl: str) -> str:
    """metrics-server's own manifests (its pinned module's manifests/base) on the node's image.

    Its kubelets serve self-signed certificates, as in any kind cluster, hence
    --kubelet-insecure-tls (the setting kind's documentation gives for it).
    """
    import yaml

    from lab_env.stack.images import kind_node
    from lab_env.stack.provision import kube

    base = kube.manifests("metrics-server")
    docs = list(yaml.safe_load_all(_run([kubectl, "kustomize", str(base)], "rendering metrics-server's manifests")))
    for doc in docs:
        if doc and doc.get("kind") == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["image"] = kind_node.component_refs()["metrics-server"]
            container["imagePullPolicy"] = "IfNotPresent"
            container["args"] = [*container.get("args", []), "--kubelet-insecure-tls"]
    return yaml.safe_dump_all([d for d in docs if d], sort_keys=False)


def local_images() -> bool:
    """Whether kind runs on the bakery's images (LAB_ENV_IMAGES=local) rather than pulled ones."""
    from lab_env.stack.images.catalog import image_set

    return image_set() == "local"


def local_exists() -> bool:
    from lab_env.stack import engine as engines
    from lab_env.stack.provision import kind_build

    engine = engines.find()
    kind = kind_build.bin_dir() / "kind"
    if engine is None or not kind.exists():
        return False
    listed = _run([str(kind), "get", "clusters"], "listing kind clusters", env={"DOCKER_HOST": engine.host})
    return cluster_name() in listed.split()


def local_config(workers: int, name: str) -> dict[str, Any]:
    """The kind cluster config for the local node image: 1 control plane, ``workers`` workers."""
    from lab_env.stack.images import kind_node

    p = pins()
    node = kind_node.node_ref()
    cluster_patch = {
        "kind": "ClusterConfiguration",
        # kubeadm's images are the bakery's: localhost/lab-env/kube-apiserver:v1.36.3 and so on.
        "imageRepository": "localhost/lab-env",
        "etcd": {"local": {"imageTag": p.kubernetes["etcd"]}},
        "dns": {"imageTag": f"v{p.kind_node['coredns']}"},
    }
    # Kubernetes 1.35+ kubelets refuse a cgroup v1 host unless told otherwise; this machine is one.
    kubelet_patch = {"kind": "KubeletConfiguration", "failCgroupV1": False}
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": name,
        "networking": {"apiServerAddress": "127.0.0.1"},
        "kubeadmConfigPatches": [json.dumps(cluster_patch), json.dumps(kubelet_patch)],
        "nodes": [{"role": "control-plane", "image": node}]
        + [{"role": "worker", "image": node} for _ in range(workers)],
    }


def local_tools() -> tuple[Any, dict[str, str], str, str]:
    """The engine, the environment that points docker at it, and the kind and kubectl built here."""
    from lab_env.stack import engine as engines
    from lab_env.stack.provision import kind_build

    engine = engines.up()
    env = {"DOCKER_HOST": engine.host}
    bins = kind_build.bin_dir()
    return engine, env, str(bins / "kind"), str(bins / "kubectl")


def local_kubectl() -> Callable[..., str]:
    """``kubectl(*args, stdin=None) -> str`` on the local kind cluster (its context); a LabEnvError on failure."""
    _, env, _, kubectl = local_tools()
    context = f"kind-{cluster_name()}"

    def run(*args: str, stdin: str | None = None) -> str:
        return _run([kubectl, "--context", context, *args], f"kubectl {args[0] if args else ''}", stdin, env)

    return run


def local_load(*refs: str) -> None:
    """Copy images from the engine into the worker nodes of the local kind cluster (``kind load docker-image``)."""
    from lab_env.core.progress_bar import run_with_progress

    _, env, kind, _ = local_tools()
    name = cluster_name()
    # Only where pods run: the control-plane node is tainted against them.
    workers = [n for n in _run([kind, "get", "nodes", "--name", name], "listing nodes", env=env).split()
               if not n.endswith("-control-plane")]  # fmt: skip
    run_with_progress(
        [kind, "load", "docker-image", "--name", name, "--nodes", ",".join(workers), *refs],
        f"loading {len(refs)} image(s) into the nodes",
        logs_dir() / "cluster-load.log",
        env=env,
        fix="see the log",
    )


def local_up(
    workers: int = DEFAULT_WORKERS, wait: str = "300s", with_dapr: bool = True, timeout: str = "10m"
) -> list[str]:
    """Build what is missing (kind, the node image), then create the cluster unless it exists."""
    import yaml

    from lab_env.core.progress_bar import run_with_progress
    from lab_env.stack.images import bakery, kind_node
    from lab_env.stack.provision import kind_build

    name = cluster_name()
    engine, env, kind, kubectl = local_tools()
    debian = bakery.build(engine, ["debian"])[-1].ref
    kind_build.build()
    node = kind_node.build(engine, debian)
    if name in _run([kind, "get", "clusters"], "listing kind clusters", env=env).split():
        made = "was already up"
    else:
        config = logs_dir().parent / LOCAL_CONFIG_NAME
        config.write_text(yaml.safe_dump(local_config(workers, name), sort_keys=False))
        run_with_progress(
            [kind, "create", "cluster", "--config", str(config), "--wait", wait],
            f"creating kind cluster {name} ({workers} workers)",
            logs_dir() / "cluster-create.log",
            env=env,
            fix="see the log; `lab-env cluster down --runtime kind` removes what was made",
        )
        made = "is up"
    _run([kind, "export", "kubeconfig", "--name", name], "writing the kubeconfig", env=env)
    summary = [f"kind cluster {name} {made} (kubectl context kind-{name}, nodes from {node}, built here)"]
    _run(
        [kubectl, "--context", f"kind-{name}", "apply", "-f", "-"],
        "installing metrics-server",
        stdin_text=metrics_server_manifest(kubectl),
        env=env,
    )
    if with_dapr:
        summary.append(_local_dapr(engine, env, kind, name, timeout))
    return summary


def _local_dapr(engine: Any, env: dict[str, str], kind: str, name: str, timeout: str) -> str:
    """Dapr's chart from the pinned module, its images from the bakery, loaded into every node."""
    from lab_env.core.progress_bar import run_with_progress
    from lab_env.runtime.clusters import kind_dapr
    from lab_env.stack.images import k8s_tools

    refs = kind_dapr.images(engine)
    run_with_progress(
        [kind, "load", "docker-image", "--name", name, *refs],
        "loading Dapr's images into the nodes",
        logs_dir() / "cluster-dapr-load.log",
        env=env,
        fix="see the log",
    )
    helm = str(k8s_tools.build()["helm"])
    run_with_progress(
        kind_dapr.helm_argv(helm, f"kind-{name}", timeout),
        f"installing Dapr {pins().dapr_runtime} (its Helm chart)",
        logs_dir() / "cluster-dapr.log",
        env=env,
        fix="see the log; `kubectl -n dapr-system get pods` shows which service is not ready",
    )
    return f"Dapr {pins().dapr_runtime} in namespace {kind_dapr.NAMESPACE}, installed by its own Helm chart"


def local_down() -> bool:
    """Delete the cluster kind made on the engine lab-env uses; True if there was one."""
    from lab_env.stack import engine as engines
    from lab_env.stack.provision import kind_build

    engine = engines.find()
    kind = kind_build.bin_dir() / "kind"
    if engine is None or not kind.exists():
        return False
    env = {"DOCKER_HOST": engine.host}
    name = cluster_name()
    if name not in _run([str(kind), "get", "clusters"], "listing kind clusters", env=env).split():
        return False
    _run([str(kind), "delete", "cluster", "--name", name], f"deleting kind cluster {name}", env=env)
    # kind keeps its network for later clusters; lab-env made it, so the last cluster out removes it.
    if not _run([str(kind), "get", "clusters"], "listing kind clusters", env=env).split():
        engine.docker("network", "rm", KIND_NETWORK)
    return True
