"""Lab 05's Kubernetes home on running pods: the spec's own manifests on the kind cluster built here.

    home = kind_home.deploy(spec, kubectl, load)   # image built and loaded, Redis and Kafka, the home; all Ready
    home.call("products", path, body)              # from inside an agent's pod, to its injected sidecar
    home.request("buyers", path)                   # (status, body), refusals included
    home.restart_pods("products")                  # delete its pods; the Deployment makes new ones
    home.rolling_update("products")                # new pods replace the old ones one by one
    home.remove()                                  # the namespace and everything in it

``kubectl(*args, stdin=None) -> str`` and ``load(*image_refs)`` are the caller's
(the kind cluster's kubectl with its context, and ``kind load docker-image``).

What it changes in ``kube.manifests`` and why:
- Redis and Kafka run in the home's namespace, configured as the devcontainer's
  compose services are (read from devcontainer/compose.yaml, not copied), so the
  components point at their Services instead of 127.0.0.1. Natively they listen
  on loopback only, which pods cannot reach.
- Every agent gets ``LAB_RUN_TOKEN`` (actor types carry it: a new pod must host the
  same types to find its actors' state) and ``APP_ID``, as the container home does,
  and an emptyDir on /tmp, since its root file system is read-only.
The rest (Configurations with mTLS and access control, scoped Components,
Resiliency, HPA, probes, the dapr.io annotations) is applied as rendered.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab_env.core.names import run_token
from lab_env.core.paths import REPO_ROOT
from lab_env.core.probes import wait_until
from lab_env.core.profile import Profile, from_native
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import container, kube
from lab_env.marketplace.homes.spec import HomeSpec
from lab_env.stack.devcontainer import COMPOSE_FILE
from lab_env.stack.engine import Engine
from lab_env.stack.images.catalog import IMAGE_SET_VAR, choose

Kubectl = Callable[..., str]
# The images a home needs where nothing is pulled (the agents' base, and Redis and Kafka in its namespace).
LOCAL_IMAGES = ["agent-base", "redis", "kafka"]
Load = Callable[..., None]

SIDECAR = "http://127.0.0.1:3500"
# Safety nets only: each rollout's readiness decides; a busy 2-core machine may take minutes.
ROLLOUT_LIMIT = "900s"
ANSWER_LIMIT_S = 600.0
# Run by the agent's own Python in its pod, so the call goes where the agent's calls go: its sidecar.
# It prints the answer's status and body, errors included, as one JSON line.
EXEC_CALL = """
import json, sys, urllib.error, urllib.request
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
request = urllib.request.Request(sys.argv[1], data=body, headers={"Content-Type": "application/json"})
try:
    answer = urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as err:
    print(json.dumps({"status": err.code, "body": err.read().decode()}))
else:
    print(json.dumps({"status": answer.status, "body": answer.read().decode()}))
"""


def profile(namespace: str) -> Profile:
    """Where the stack's services are, as the home's pods see them."""
    return Profile(
        "kind",
        f"redis.{namespace}.svc.cluster.local",
        f"kafka.{namespace}.svc.cluster.local",
        f"dapr-placement-server.{kube.DAPR_NAMESPACE}.svc.cluster.local",
        f"dapr-scheduler-server.{kube.DAPR_NAMESPACE}.svc.cluster.local",
    )


def _compose_service(name: str) -> dict:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text())["services"][name])


def _backing(name: str, namespace: str, container_spec: dict, port: int, service: dict | None = None) -> list[dict]:
    labels = {"app": name, "app.kubernetes.io/part-of": namespace}
    pod = {
        # Kubernetes would set KAFKA_PORT=tcp://... for a Service named kafka, and Kafka's image turns
        # every KAFKA_* variable into a broker setting.
        "enableServiceLinks": False,
        "containers": [{"name": name, "ports": [{"containerPort": port}], **container_spec}],
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}], **(service or {})},
        },
    ]


def backing_services(namespace: str) -> list[dict]:
    """Redis and a one-node Kafka in ``namespace``, set up as the devcontainer's compose file sets them."""
    where = profile(namespace)
    redis = _compose_service("redis")
    redis_spec = {
        "image": choose(pins().image("redis")),
        # Compose's `command` is Kubernetes' `args`: the image's entrypoint still runs (it turns protected mode off).
        "args": list(redis["command"]),
        "readinessProbe": {"exec": {"command": ["redis-cli", "-p", str(where.redis_port), "ping"]}, "periodSeconds": 2},
    }
    kafka = _compose_service("kafka")
    env = {**kafka["environment"], "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{where.kafka_bootstrap}"}
    probe = f"/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server {where.kafka_bootstrap} >/dev/null 2>&1"
    kafka_spec = {
        "image": choose(pins().image("kafka")),
        "env": [{"name": key, "value": str(value)} for key, value in env.items()],
        # The broker answers at its advertised address only once it serves requests.
        "readinessProbe": {"exec": {"command": ["sh", "-c", probe]}, "periodSeconds": 5, "timeoutSeconds": 20},
    }
    return [
        *_backing("redis", namespace, redis_spec, where.redis_port),
        # Headless and published before Ready: the name is the pod's own address, so the broker's readiness
        # probe can reach it at its advertised listener (a ClusterIP would route only to Ready pods).
        *_backing(
            "kafka", namespace, kafka_spec, where.kafka_port, {"clusterIP": "None", "publishNotReadyAddresses": True}
        ),
    ]


def home_manifests(spec: HomeSpec, secret_values: dict[str, str] | None, token: str) -> list[dict]:
    """``kube.manifests`` with the cluster's service addresses, the run token and a writable /tmp
    (``secret_values`` None: no Secret object; create it yourself, so the key never lands in a file)."""
    where = profile(spec.home)
    moved = from_native(where)
    out = []
    for obj in copy.deepcopy(kube.manifests(spec, secret_values)):
        if obj["kind"] == "Component":
            for item in obj["spec"]["metadata"]:
                if "value" in item:
                    item["value"] = moved.get(item["value"], item["value"])
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            app = pod["containers"][0]
            app["env"] = [*app.get("env", []), {"name": "LAB_RUN_TOKEN", "value": token},
                          {"name": "APP_ID", "value": obj["metadata"]["name"]}]  # fmt: skip
            app["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
            pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
        out.append(obj)
    return out


def build_image(engine: Engine, spec: HomeSpec, folder: Path) -> str:
    """``spec.image``, built from the container home's Dockerfile (the Deployments set each agent's command)."""
    container.write(spec, folder)
    dockerfile = folder / f"Dockerfile.{spec.agents[0].app_id}"
    engine.check("build", "--quiet", "-t", spec.image, "-f", str(dockerfile), str(REPO_ROOT), timeout=1800)
    return spec.image


@dataclass
class KindHome:
    spec: HomeSpec
    kubectl: Kubectl

    @property
    def namespace(self) -> str:
        return self.spec.home

    def request(self, agent: str, path: str, body: object | None = None) -> tuple[int, str]:
        """From inside one of ``agent``'s pods to its own sidecar: the answer's status and body.
        A LabEnvError when nothing answers (the pod or its sidecar is not up)."""
        extra = [json.dumps(body)] if body is not None else []
        out = self.kubectl("-n", self.namespace, "exec", f"deployment/{agent}", "-c", agent, "--",
                           "python", "-c", EXEC_CALL, f"{SIDECAR}{path}", *extra)  # fmt: skip
        answer = json.loads(out.strip().splitlines()[-1])
        return int(answer["status"]), str(answer["body"])

    def call(self, agent: str, path: str, body: object | None = None) -> str:
        """The body of a successful call; a LabEnvError quoting any other answer."""
        status, text = self.request(agent, path, body)
        if status >= 300:
            raise LabEnvError(f"{agent}'s call to {path} answered {status}: {text[:200]}",
                              f"kubectl -n {self.namespace} logs deployment/{agent} -c daprd")  # fmt: skip
        return text

    def pods(self, agent: str) -> dict[str, str]:
        """Pod name -> node name, for ``agent``'s pods that are not being deleted."""
        found = json.loads(self.kubectl("-n", self.namespace, "get", "pods", "-l", f"app={agent}", "-o", "json"))
        return {
            p["metadata"]["name"]: p["spec"].get("nodeName", "")
            for p in found["items"]
            if not p["metadata"].get("deletionTimestamp")
        }

    def containers(self, agent: str) -> list[str]:
        """The container names in one of ``agent``'s pods: the agent's, and the sidecar the injector added."""
        found = json.loads(self.kubectl("-n", self.namespace, "get", "pods", "-l", f"app={agent}", "-o", "json"))
        return [c["name"] for c in found["items"][0]["spec"]["containers"]] if found["items"] else []

    def table(self) -> str:
        """One line per pod of the home: name, node, its containers, and how many are ready."""
        found = json.loads(self.kubectl("-n", self.namespace, "get", "pods", "-o", "json"))["items"]
        rows = [
            (
                p["metadata"]["name"],
                p["spec"].get("nodeName", "-"),
                "+".join(c["name"] for c in p["spec"]["containers"]),
                f"{sum(s['ready'] for s in p['status'].get('containerStatuses', []))}/{len(p['spec']['containers'])}",
            )
            for p in sorted(found, key=lambda p: p["metadata"]["name"])
        ]
        if not rows:
            return f"no pods in namespace {self.namespace}"
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)

    def wait_ready(self, agent: str) -> None:
        self.kubectl("-n", self.namespace, "rollout", "status", f"deployment/{agent}", f"--timeout={ROLLOUT_LIMIT}")

    def restart_pods(self, agent: str) -> None:
        """Delete every pod of ``agent``; its Deployment replaces them; back when all are Ready."""
        before = set(self.pods(agent))
        self.kubectl("-n", self.namespace, "delete", "pods", "-l", f"app={agent}", "--wait=true")
        # The Deployment's status lags a deletion, so `rollout status` could pass on the old pods' counts:
        # wait for the new pods themselves, as many as it wants, each with every container Ready.
        wait_until(lambda: self._ready_pods(agent, exclude=before), ANSWER_LIMIT_S, f"new {agent} pods to be Ready")

    def _ready_pods(self, agent: str, exclude: set[str]) -> bool:
        found = json.loads(self.kubectl("-n", self.namespace, "get", "pods", "-l", f"app={agent}", "-o", "json"))
        wanted = json.loads(self.kubectl("-n", self.namespace, "get", "deployment", agent, "-o", "json"))
        live = [p for p in found["items"] if not p["metadata"].get("deletionTimestamp")]
        ready = [
            p
            for p in live
            if p["metadata"]["name"] not in exclude
            and p["status"].get("containerStatuses")
            and all(c["ready"] for c in p["status"]["containerStatuses"])
        ]
        return len(ready) == len(live) == int(wanted["spec"]["replicas"])

    def rolling_update(self, agent: str) -> None:
        """A rolling update of ``agent`` (``kubectl rollout restart``): new pods replace the old one by one."""
        self.kubectl("-n", self.namespace, "rollout", "restart", f"deployment/{agent}")
        self.wait_ready(agent)

    def wait_answers(self, agent: str, path: str, expected: str | None = None) -> str:
        """Until ``agent``'s call to ``path`` succeeds (and answers ``expected``, if given); the answer."""
        answers: list[str] = []

        def answered() -> bool:
            try:
                status, text = self.request(agent, path)
            except LabEnvError:
                return False
            answers.append(text)
            return status < 300 and (expected is None or text == expected)

        wait_until(answered, ANSWER_LIMIT_S, f"{agent}'s call to {path} to answer")
        return answers[-1]

    def remove(self) -> None:
        self.kubectl("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=true", "--timeout=300s")


def render(spec: HomeSpec, image: str | None = None, token: str | None = None) -> str:
    """The whole home as one YAML stream for a cluster of your own: the Namespace, Redis, Kafka and the
    agents (``image``: where you pushed the agents' image). No Secret: create it from the environment."""
    from dataclasses import replace

    spec = replace(spec, image=image) if image else spec
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.home}}
    objects = [namespace, *backing_services(spec.home), *home_manifests(spec, None, token or run_token())]
    return kube.to_yaml([namespace, *[o for o in objects[1:] if o["kind"] != "Namespace"]])


def deploy(
    spec: HomeSpec, kubectl: Kubectl, load: Load, engine: Engine, folder: Path, secret_values: dict[str, str]
) -> KindHome:
    """Build and load the images, start Redis and Kafka, apply the home; every Deployment Ready.
    If any step fails, the namespace is removed: nothing is left half started."""
    if engine.managed or os.environ.get(IMAGE_SET_VAR) == "local":  # nothing pulls: the bakery's stand-ins
        from lab_env.stack.images import bakery

        bakery.build(engine, LOCAL_IMAGES)
    image = build_image(engine, spec, folder)
    load(image, choose(pins().image("redis")), choose(pins().image("kafka")))
    home = KindHome(spec, kubectl)
    try:
        namespace = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.home}}]
        kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": namespace}))
        services = backing_services(spec.home)
        kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": services}))
        for name in ("redis", "kafka"):
            home.wait_ready(name)
        objects = home_manifests(spec, secret_values, run_token())
        # Components before the Deployments whose sidecars load them at start.
        ordered = sorted(objects, key=lambda o: o["kind"] == "Deployment")
        kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": ordered}))
        for agent in spec.agents:
            home.wait_ready(agent.app_id)
            if "daprd" not in home.containers(agent.app_id):
                raise LabEnvError(
                    f"{agent.app_id}'s pods have no daprd: Dapr's injector did not add it",
                    f"kubectl -n {kube.DAPR_NAMESPACE} logs deployment/dapr-sidecar-injector",
                )
    except BaseException as failure:
        try:
            home.remove()  # nothing half-started
        except LabEnvError as err:
            failure.add_note(f"removing namespace {spec.home} failed too: {err}")
        raise
    return home


def why_not() -> str | None:
    """Why the kind home cannot run here (one line, with what to do), or None when it can."""
    from lab_env.runtime.clusters import kind

    if os.environ.get("LAB_ENV_GRADING") == "1":
        return "the grader starts no cluster (the checks grade the manifests on kwok); run the lab to watch it"
    if not kind.local_exists():
        return (
            "no kind cluster built here is up: run `LAB_ENV_IMAGES=local lab-env cluster up --runtime kind` in a "
            "terminal (about 2 minutes once its images are built, 15 to 25 the first time), then this cell"
        )
    return None


def start_or_explain(spec: HomeSpec, folder: Path, secret_values: dict[str, str]) -> KindHome | None:
    """``deploy`` on the local kind cluster, or None after one line saying why not."""
    from lab_env.runtime.clusters import kind

    reason = why_not()
    if reason:
        print(f"kind home not started: {reason}")
        return None
    # The cluster built here runs the bakery's images, whatever this process was started with.
    os.environ[IMAGE_SET_VAR] = "local"
    engine, *_ = kind.local_tools()
    return deploy(spec, kind.local_kubectl(), kind.local_load, engine, folder, secret_values)
