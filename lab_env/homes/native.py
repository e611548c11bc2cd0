"""The native home: an agent-home spec rendered for the real Dapr CLI's
multi-app run (`dapr run -f dapr.yaml`), on this machine's lab stack.

    folder/dapr.yaml             apps: one entry per agent replica
    folder/resources/*.yaml      the Components, scoped as in the spec, and
                                 the secret store (local.env: secrets are
                                 read from the environment, never a file)
    folder/config/<app>.yaml     each agent's Configuration (access control)

One instance per agent (replicas and scaling are the Kubernetes home's):
agents keep the spec's app port, and the caller chooses the sidecars' ports
(free ones, so two homes never collide). Components and configurations are the Kubernetes home's own
objects (kube.py), so the two homes cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import kube
from .spec import HomeSpec

SECRET_STORE = kube.SECRET_STORE


def _env_var(secret: str) -> str:
    """'openai-api-key' -> 'OPENAI_API_KEY': where local.env finds it."""
    return secret.upper().replace("-", "_")


def resources(spec: HomeSpec) -> dict[str, dict]:
    """File name -> object: the home's Components for self-hosted daprd."""
    out = {}
    for component in kube.components(spec):
        component = {**component, "metadata": {"name": component["metadata"]["name"]}}
        if component["spec"]["type"] == "secretstores.kubernetes":
            component["spec"] = {"type": "secretstores.local.env", "version": "v1", "metadata": []}
        else:
            component["spec"] = {**component["spec"], "metadata": [
                {"name": m["name"], "secretKeyRef": {"name": _env_var(m["secretKeyRef"]["key"]),
                                                     "key": _env_var(m["secretKeyRef"]["key"])}}
                if "secretKeyRef" in m else m for m in component["spec"]["metadata"]]}
        out[f"{component['metadata']['name']}.yaml"] = component
    resiliency = kube.resiliency(spec)
    out["resiliency.yaml"] = {**resiliency, "metadata": {"name": resiliency["metadata"]["name"]}}
    return out


# Self-hosted daprd's namespace when NAMESPACE is unset: the one in every
# local SPIFFE id (spiffe://public/ns/default/<app id>).
NAMESPACE = "default"


def configurations(spec: HomeSpec) -> dict[str, dict]:
    """Each agent's Configuration: the Kubernetes home's access control, with
    the policies in the self-hosted namespace (daprd refuses a policy without one)."""
    out = {}
    for agent in spec.agents:
        config = kube.configuration(agent, spec)
        policies = [{**p, "namespace": NAMESPACE} for p in config["spec"]["accessControl"]["policies"]]
        out[f"{agent.app_id}.yaml"] = {
            "apiVersion": config["apiVersion"], "kind": "Configuration", "metadata": {"name": config["metadata"]["name"]},
            "spec": {**config["spec"], "accessControl": {**config["spec"]["accessControl"], "policies": policies}}}
    return out


def run_file(spec: HomeSpec, folder: Path, sidecar_ports: dict[str, tuple[int, int]], app_dir: Path,
             python: str = sys.executable) -> dict:
    """The `dapr run -f` template: ``sidecar_ports`` maps each app id to its
    sidecar's (HTTP, gRPC) ports; ``app_dir`` is where the apps' modules import from."""
    apps = []
    for agent in spec.agents:
        http, grpc = sidecar_ports[agent.app_id]
        apps.append({
            "appID": agent.app_id,
            "appDirPath": str(app_dir),
            "appPort": agent.port,
            "appProtocol": "http",
            "appChannelAddress": "127.0.0.1",
            "daprHTTPPort": http,
            "daprGRPCPort": grpc,
            "resourcesPaths": [str(folder / "resources")],
            "configFilePath": str(folder / "config" / f"{agent.app_id}.yaml"),
            "command": [python, "-m", "uvicorn", agent.app, "--host", "127.0.0.1", "--port", str(agent.port)],
            "appLogDestination": "file",
            "daprdLogDestination": "file",
        })
    return {"version": 1, "apps": apps}


def write(spec: HomeSpec, folder: Path, sidecar_ports: dict[str, tuple[int, int]], app_dir: Path) -> Path:
    """Write the native home into ``folder``; returns the path of dapr.yaml."""
    import yaml

    for sub, files in (("resources", resources(spec)), ("config", configurations(spec))):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for name, obj in files.items():
            (folder / sub / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    path = folder / "dapr.yaml"
    path.write_text(yaml.safe_dump(run_file(spec, folder, sidecar_ports, app_dir), sort_keys=False))
    return path
