"""A real Kubernetes control plane as local processes, for machines with no Docker.

kube-apiserver, kube-controller-manager, kube-scheduler, etcd and
metrics-server are the real thing; kwok plays the nodes: it marks pods
Running without starting their containers, and reports the CPU and memory
a pod's `kwok.x-k8s.io/usage-*` annotations give (so the HPA can scale).
kwokctl's binary runtime starts them from the binaries lab_env builds
(provision/kube.py), bound to 127.0.0.1 on ports free at creation.

Everything lives under the state folder (kwok/): the workdir, the
kubeconfig and the logs. `down` deletes the cluster and checks that every
process it started has exited.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_env.core.paths import state_dir
from lab_env.core.ports import free_ports
from lab_env.core.procs import alive, stop
from lab_env.errors import LabEnvError

DEFAULT_NAME = "agent-homes"
NODES = 2
DAPR_NAMESPACE = "dapr-system"
_PORT_FIELDS = (
    "kubeApiserverPort",
    "etcdPort",
    "etcdPeerPort",
    "kwokControllerPort",
    "kubeControllerManagerPort",
    "kubeSchedulerPort",
    "metricsServerPort",
)


class KubectlError(LabEnvError):
    """The API server (or kubectl) refused: the message is the server's own."""


# kwokctl's own rule for a cluster name; it is also a file name under the state
# folder, so a name from a notebook can never reach a path outside it.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class NativeCluster:
    name: str = DEFAULT_NAME

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise LabEnvError(
                f"{self.name!r} is not a cluster name",
                "use lower-case letters, digits and '-', at most 63 characters, as `lab-env cluster up` names them",
            )

    @property
    def workdir(self) -> Path:
        return state_dir() / "kwok"

    @property
    def home(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / f"{self.name}.kubeconfig"

    @property
    def config_file(self) -> Path:
        return self.workdir / f"{self.name}.kwokctl.yaml"

    def env(self) -> dict[str, str]:
        return {**os.environ, "KWOK_WORKDIR": str(self.workdir), "KUBECONFIG": str(self.kubeconfig)}

    def pids(self) -> dict[str, int]:
        """The component processes kwokctl recorded (its pid files have no newline)."""
        found = {}
        for path in sorted((self.home / "pids").glob("*.pid")):
            try:
                found[path.stem] = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
        return found

    def running(self) -> bool:
        pids = self.pids()
        return bool(pids) and all(alive(pid) for pid in pids.values()) and self.kubeconfig.exists()

    def exited(self) -> list[str]:
        """The components whose process is gone."""
        return sorted(name for name, pid in self.pids().items() if not alive(pid))

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> str:
        """Run the cluster's own kubectl; a refusal raises KubectlError with the server's message."""
        from lab_env.stack.provision.kube import kube_bin

        if not self.kubeconfig.exists():
            raise LabEnvError(f"no native cluster named {self.name} is running", "start it with `lab-env cluster up`")
        try:
            done = subprocess.run(
                [str(kube_bin("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise LabEnvError(
                f"kubectl {' '.join(args[:2])} took over {timeout:.0f} s",
                "check the cluster with `lab-env cluster status`",
            ) from err
        if check and done.returncode != 0:
            raise KubectlError(_server_message(done.stderr or done.stdout))
        return done.stdout

    def apply(self, objects: list[dict[str, Any]] | dict[str, Any], dry_run: bool = False) -> str:
        """`kubectl apply` the objects (server-side dry run with ``dry_run``)."""
        items = objects if isinstance(objects, list) else [objects]
        args = ["apply", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
        return self.kubectl(*args, stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def get(self, kind: str, name: str | None = None, namespace: str = "default") -> dict[str, Any]:
        args = ["get", kind] + ([name] if name else []) + ["-n", namespace, "-o", "json"]
        return json.loads(self.kubectl(*args))


_attach_with: Callable[[str], NativeCluster] | None = None


def attach_clusters_with(find: Callable[[str], NativeCluster] | None) -> None:
    """Where ``attach`` finds clusters from now on (None: this machine's). A grader sets it to
    reach them in the sandbox that started them (grading/sandbox_handles.sandboxed_native_cluster)."""
    global _attach_with
    _attach_with = find


def attach(name: str) -> NativeCluster:
    """The cluster ``name`` another process started (a notebook, `lab-env cluster up`)."""
    if _attach_with is not None:
        return _attach_with(name)
    return NativeCluster(name)


def _server_message(text: str) -> str:
    """The API server's refusal, on one line (kubectl prints it over several)."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:1500] or "kubectl failed with no message"


def _config(cluster: NativeCluster, ports: list[int]) -> dict[str, Any]:
    from lab_env.stack.provision.kube import kube_bin, manifests

    metrics_manifests = manifests("metrics-server")
    options: dict[str, Any] = {
        "runtime": "binary",
        "bindAddress": "127.0.0.1",  # kwokctl's default is every interface
        "kubeApiserverBinary": str(kube_bin("kube-apiserver")),
        "kubeControllerManagerBinary": str(kube_bin("kube-controller-manager")),
        "kubeSchedulerBinary": str(kube_bin("kube-scheduler")),
        "kubectlBinary": str(kube_bin("kubectl")),
        "kwokControllerBinary": str(kube_bin("kwok")),
        "etcdBinary": str(kube_bin("etcd")),
        "metricsServerBinary": str(kube_bin("metrics-server")),
        # kwokctl's default is a release URL; the module carries the same manifests.
        "metricsServerManifests": [str(metrics_manifests)],
        "enableMetricsServer": True,
        "cacheDir": str(cluster.workdir / "cache"),
        **dict(zip(_PORT_FIELDS, ports, strict=True)),
    }
    # One controller manager and one scheduler need no leader election; with it,
    # a control plane stalled past the renew deadline (a busy machine) makes both
    # exit for good ("leaderelection lost"), and the cluster is half gone.
    no_election = [
        {"name": name, "extraArgs": [{"key": "leader-elect", "value": "false"}]}
        for name in ("kube-controller-manager", "kube-scheduler")
    ]
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": options,
        "componentsPatches": no_election,
    }


def up(name: str = DEFAULT_NAME, nodes: int = NODES, timeout: float = 180) -> NativeCluster:
    """Start the cluster (building its binaries on first use); a running one is reused."""
    from lab_env.stack.provision.kube import install_kube, kube_bin, manifests

    cluster = NativeCluster(name)
    if cluster.running():
        return cluster
    install_kube()
    if cluster.home.exists():  # half-started or crashed: start clean
        down(name)
    cluster.workdir.mkdir(parents=True, exist_ok=True)
    cluster.config_file.write_text(json.dumps(_config(cluster, free_ports(len(_PORT_FIELDS))), indent=2))
    kwokctl = str(kube_bin("kwokctl"))
    log = cluster.workdir / f"{name}.create.log"
    try:
        with open(log, "w") as out:
            done = subprocess.run(
                [
                    kwokctl,
                    "-c",
                    str(cluster.config_file),
                    "--name",
                    name,
                    "create",
                    "cluster",
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--wait",
                    f"{int(timeout)}s",
                ],
                env=cluster.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout + 30,
            )
        if done.returncode != 0:
            raise LabEnvError(
                f"kwokctl could not create cluster {name}: {_last_line(log)}",
                f"see {log}; then `lab-env cluster down` and up again",
            )
        subprocess.run(
            [
                kwokctl,
                "--name",
                name,
                "scale",
                "node",
                "--replicas",
                str(nodes),
                # metrics-server scrapes each node's InternalIP: keep it on this machine.
                "--param",
                '.nodeIPs=["127.0.0.1"]',
            ],
            env=cluster.env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        cluster.kubectl(
            "wait", "--for=condition=Ready", "node", "--all", f"--timeout={int(timeout)}s", timeout=timeout + 10
        )
        crds = manifests("dapr-crds")
        cluster.kubectl("apply", "--server-side", "-f", str(crds))
        cluster.kubectl(
            "wait", "--for", "condition=established", "crd", "--all", f"--timeout={int(timeout)}s", timeout=timeout + 10
        )
        _restart_exited(cluster)
    except BaseException:
        down(name)  # nothing half-started stays behind
        raise
    return cluster


RESTARTS = 3
KWOKCTL_START_S = 90


def _restart_exited(cluster: NativeCluster) -> None:
    """Start again the components that exited while the cluster came up.

    kwokctl starts every component at once. The controller manager gives the
    API server 10 s to turn healthy and metrics-server must read a ConfigMap
    at start: on a busy machine the API server is slower than that, both exit
    for good, and the cluster looks up while Deployments never get pods. A
    kubelet restarts such static pods; here `kwokctl start cluster` re-forks
    the components it finds not running, once their stale pid files are gone
    (see _forget_pids). Each one's first log is kept under kwok/died/ to show
    why it exited.
    """
    exited = cluster.exited()
    for _ in range(RESTARTS):
        if not exited:
            return
        _keep_logs(cluster, exited)
        cluster.kubectl("get", "--raw", "/readyz", timeout=60)  # the restarted ones meet a serving API server
        _forget_pids(cluster, exited)
        _kwokctl_start(cluster, exited)
        exited = cluster.exited()
    if exited:
        raise LabEnvError(
            f"cluster {cluster.name}: {', '.join(exited)} exited {RESTARTS} times while starting",
            f"see {cluster.workdir / 'died' / cluster.name}; then `lab-env cluster down` and up again",
        )


def _forget_pids(cluster: NativeCluster, components: list[str]) -> None:
    """Delete the pid files of exited components, or kwokctl would not start them again.

    kwokctl counts a component as running while kill(pid, 0) succeeds on the
    pid in its pid file, and it does on a zombie: the kwokctl that forked the
    component has exited, so the dead component waits for PID 1 to reap it,
    late or never when PID 1 is no real init (a sandbox's process manager).
    `exited` counts a zombie as exited, kwokctl as running: `start cluster`
    then skips it and exits 0. With no pid file, kwokctl forks it again.
    """
    recorded = cluster.pids()
    for component in components:
        path = cluster.home / "pids" / f"{component}.pid"
        if component in recorded and not alive(recorded[component]):  # still the exited process's pid
            path.unlink(missing_ok=True)


def _kwokctl_start(cluster: NativeCluster, components: list[str]) -> None:
    """`kwokctl start cluster`, which must fork ``components`` again: if it fails or forks nothing, say why."""
    from lab_env.stack.provision.kube import kube_bin

    fix = f"see {cluster.workdir / 'died' / cluster.name}; then `lab-env cluster down` and up again"
    try:
        done = subprocess.run(
            [str(kube_bin("kwokctl")), "--name", cluster.name, "start", "cluster", "--timeout", f"{KWOKCTL_START_S}s"],
            env=cluster.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=KWOKCTL_START_S + 30,
        )
    except subprocess.TimeoutExpired as err:
        raise LabEnvError(f"kwokctl start cluster {cluster.name} took over {KWOKCTL_START_S + 30} s", fix) from err
    said = _last_text_line(f"{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        raise LabEnvError(
            f"kwokctl could not start {', '.join(components)} of cluster {cluster.name} again "
            f"(exit {done.returncode}): {said}",
            fix,
        )
    unforked = sorted(set(components) - set(cluster.pids()))
    if unforked:
        raise LabEnvError(f"kwokctl start cluster {cluster.name} did not fork {', '.join(unforked)} again: {said}", fix)


def _keep_logs(cluster: NativeCluster, components: list[str]) -> None:
    """Copy the components' logs under kwok/died/<cluster>/ (a restart truncates them)."""
    kept = cluster.workdir / "died" / cluster.name
    kept.mkdir(parents=True, exist_ok=True)
    for component in components:
        log = cluster.home / "logs" / f"{component}.log"
        if log.exists():
            shutil.copyfile(log, kept / f"{component}.{len(list(kept.glob(component + '.*')))}.log")


def _last_line(path: Path) -> str:
    return _last_text_line(path.read_text(errors="replace"))


def _last_text_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def down(name: str = DEFAULT_NAME, timeout: float = 30, keep_logs: bool = True) -> bool:
    """Delete the cluster and wait until its processes have exited. True if there was one."""
    from lab_env.stack.provision.kube import kube_bin

    cluster = NativeCluster(name)
    if not cluster.home.exists():
        return False
    pids = cluster.pids()
    exited = cluster.exited()
    if exited and keep_logs:  # a component died on its own: keep its logs (kwokctl's delete removes them) to show why
        _keep_logs(cluster, exited)
    if kube_bin("kwokctl").exists():
        subprocess.run(
            [str(kube_bin("kwokctl")), "--name", name, "delete", "cluster", "--kubeconfig", str(cluster.kubeconfig)],
            env=cluster.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    for pid in pids.values():
        stop(pid, timeout=timeout)  # kwokctl has signalled them: this waits, and kills what is left
    shutil.rmtree(cluster.home, ignore_errors=True)
    for leftover in (cluster.kubeconfig, cluster.config_file, cluster.workdir / f"{name}.create.log"):
        leftover.unlink(missing_ok=True)
    return True


def forget_run(token: str) -> list[str]:
    """Delete the clusters a run named with its token (``unique_name``), once its
    processes are gone: a grader killed them, but their folders stayed."""
    clusters = NativeCluster().workdir / "clusters"
    names = (
        sorted(p.name for p in clusters.glob(f"*-{token}") if _NAME.fullmatch(p.name))
        if token and clusters.exists()
        else []
    )
    for name in names:
        down(name, timeout=5, keep_logs=False)  # the grader killed them: nothing to learn from their logs
    return names


def down_all(timeout: float = 30) -> list[str]:
    """Delete every native cluster (``lab-env down``): one a notebook left when a cell failed before its
    own ``down`` would otherwise run on, unseen. Returns their names."""
    clusters = NativeCluster().workdir / "clusters"
    # A folder that is no cluster name is no cluster of ours: skip it rather than stop halfway.
    names = (
        sorted(p.name for p in clusters.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))
        if clusters.exists()
        else []
    )
    return [name for name in names if down(name, timeout=timeout)]


def status(name: str = DEFAULT_NAME) -> list[str]:
    """One line per component: running or not, and its pid."""
    cluster = NativeCluster(name)
    pids = cluster.pids()
    if not pids:
        return [f"no native cluster named {name} (start it with `lab-env cluster up`)"]
    return [f"{'ok  ' if alive(pid) else 'FAIL'} {component:<24} pid {pid}" for component, pid in pids.items()]
