"""The native Kubernetes cluster of lab 05 (`lab-env cluster up` with no Docker).

A real kube-apiserver, controller-manager, scheduler, etcd and
metrics-server, with kwok simulating the nodes, started by kwokctl from the
binaries lab_env builds (`make test-tools` builds them; a test run without
them builds them on first use). Everything here talks to that real API
server: validation, controllers and scheduling are Kubernetes' own.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import psutil
import pytest

from lab_env.core.probes import wait_until
from lab_env.core.procs import alive
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import kube
from lab_env.marketplace.homes.spec import load
from lab_env.runtime.clusters import native as native_cluster
from lab_env.runtime.clusters.native import KubectlError, NativeCluster

SPEC = load(os.path.join(os.path.dirname(kube.__file__), "marketplace.yaml"))
STALL_S = 20  # past the 15 s lease of leader election
START_STALL_S = 14  # past the controller manager's 10 s wait for a healthy API server
SETTLE_S = 120  # safety net for controllers on a busy machine, never a pass/fail criterion
pytestmark = pytest.mark.slow  # a real control plane, and stalls of 20 s on purpose


@pytest.fixture(scope="module")
def cluster():
    name = f"lab-env-test-{os.getpid()}"
    started = native_cluster.up(name)
    try:
        yield started
    finally:
        native_cluster.down(name)


def _eventually(predicate, what: str):
    """The first truthy value of ``predicate()``, polled by the project's own wait."""
    found = []
    wait_until(lambda: bool(found.append(predicate()) or found[-1]), SETTLE_S, what)
    return found[-1]


def test_the_control_plane_runs_as_local_processes_bound_to_loopback(cluster):
    pids = cluster.pids()
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"} <= set(pids), pids
    assert all(alive(pid) for pid in pids.values())
    version = cluster.kubectl("version", "-o", "json")
    pinned = f'"gitVersion": "v{pins().kubernetes["version"]}"'
    assert version.count(pinned) == 2, version  # client and server: the pinned build
    nodes = cluster.get("nodes")["items"]
    assert len(nodes) == native_cluster.NODES
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)
    for component, pid in pids.items():
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                assert conn.laddr.ip in ("127.0.0.1", "::1"), f"{component} listens on {conn.laddr}"


def test_the_dapr_crds_are_installed_and_validate_by_schema(cluster):
    kinds = cluster.kubectl("api-resources", "--api-group=dapr.io", "-o", "name")
    for kind in ("components.dapr.io", "configurations.dapr.io", "resiliencies.dapr.io", "subscriptions.dapr.io"):
        assert kind in kinds
    bad = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Configuration",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"accessControl": {"defaultAction": "deny", "policies": "everyone"}},
    }
    with pytest.raises(KubectlError, match=r"accessControl.policies.*\"?array"):
        cluster.apply(bad, dry_run=True)
    no_type = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"version": "v1"},
    }
    with pytest.raises(KubectlError, match=r'spec.type: Required value|missing required field "type"'):
        cluster.apply(no_type, dry_run=True)


def test_the_rendered_home_passes_server_side_validation(cluster):
    objects = kube.manifests(SPEC, secret_values={name: "test-value" for name in SPEC.secrets})
    # A dry run persists nothing, so the namespace the other objects live in must exist.
    cluster.apply(objects[0])
    out = cluster.apply(objects[1:], dry_run=True)
    assert out.count("(server dry run)") == len(objects) - 1, out
    assert cluster.get("deployments", namespace=SPEC.home)["items"] == []  # nothing was created


def test_the_api_server_rejects_a_broken_deployment_with_its_own_message(cluster):
    agent = SPEC.agents[0]
    broken = kube.deployment(agent, SPEC)
    broken["metadata"]["namespace"] = "default"
    broken["spec"]["template"]["metadata"]["labels"] = {"app": "someone-else"}
    with pytest.raises(KubectlError, match=r"`selector` does not match template `labels`"):
        cluster.apply(broken, dry_run=True)
    broken = kube.deployment(agent, SPEC)
    broken["metadata"]["namespace"] = "default"
    broken["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "lots"}}
    with pytest.raises(KubectlError, match="quantities must match"):
        cluster.apply(broken, dry_run=True)


def test_a_deployment_becomes_a_replicaset_and_pods_scheduled_onto_nodes(cluster):
    cluster.apply(kube.manifests(SPEC, secret_values={name: "test-value" for name in SPEC.secrets}))
    agent = max(SPEC.agents, key=lambda a: a.replicas)
    selector = f"app={agent.app_id}"

    def running():
        pods = [
            p
            for p in cluster.get("pods", namespace=SPEC.home)["items"]
            if p["metadata"]["labels"].get("app") == agent.app_id
        ]
        ok = [p for p in pods if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")]
        return ok if len(ok) == agent.replicas else None

    pods = _eventually(running, f"{agent.replicas} Running pods of {agent.app_id}")
    owners = {p["metadata"]["ownerReferences"][0]["kind"] for p in pods}
    assert owners == {"ReplicaSet"}
    replicasets = cluster.kubectl("get", "replicasets", "-n", SPEC.home, "-l", selector, "-o", "name").split()
    assert len(replicasets) == 1
    assert {p["spec"]["nodeName"] for p in pods} <= {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}

    # A rolling update: a new template makes a second ReplicaSet, and the old one scales to 0.
    cluster.kubectl("-n", SPEC.home, "set", "env", f"deployment/{agent.app_id}", "ROLLOUT=2")
    cluster.kubectl(
        "-n",
        SPEC.home,
        "rollout",
        "status",
        f"deployment/{agent.app_id}",
        f"--timeout={SETTLE_S}s",
        timeout=SETTLE_S + 10,
    )
    sets = cluster.get("replicasets", namespace=SPEC.home)["items"]
    mine = [r for r in sets if r["metadata"]["labels"].get("app") == agent.app_id]
    assert sorted(r["spec"]["replicas"] for r in mine) == [0, agent.replicas]


def test_a_stalled_control_plane_loses_no_component(cluster):
    """A busy machine can stall etcd past the controllers' lease renew deadline;
    with leader election on, the controller manager and scheduler then exit."""
    pids = cluster.pids()
    os.kill(pids["etcd"], signal.SIGSTOP)
    try:
        time.sleep(STALL_S)  # the stall itself is the experiment, not a wait for readiness
    finally:
        os.kill(pids["etcd"], signal.SIGCONT)
    _eventually(lambda: cluster.get("nodes")["items"], "the API server after the stall")
    assert {c: pid for c, pid in cluster.pids().items() if not alive(pid)} == {}
    assert cluster.running()


def _stall_api_server_at_start(cluster: NativeCluster, seconds: float) -> threading.Thread:
    """SIGSTOP the API server the moment kwokctl forks it, as a busy machine slows it, and
    keep it stopped until the controller manager has given up on it (at least ``seconds``:
    on a busy machine the controller manager itself may start late)."""

    def stall():
        deadline = time.monotonic() + 60
        while "kube-apiserver" not in cluster.pids() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for a pid file kwokctl writes: there is no event to wait on
        pid = cluster.pids()["kube-apiserver"]
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the stall is the experiment
            # A safety net, not the criterion: the test says so if the controller manager never exits.
            wait_until(
                lambda: "kube-controller-manager" in cluster.exited(),
                SETTLE_S,
                "the controller manager to give up on the stopped API server",
            )
        except LabEnvError:
            pass
        finally:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stall, daemon=True)
    thread.start()
    return thread


def test_a_slow_api_server_at_start_loses_no_component_and_down_leaves_nothing_behind():
    """On a busy machine the API server can take over 10 s to serve; the controller
    manager and metrics-server then exit at start (CI saw both). `up` restarts them."""
    name = f"lab-env-test-down-{os.getpid()}"
    stall = _stall_api_server_at_start(NativeCluster(name), START_STALL_S)
    started = native_cluster.up(name, nodes=1)
    kept = started.workdir / "died" / name
    try:
        stall.join()
        pids = started.pids()
        assert pids and started.exited() == [] and started.running()
        restarted = sorted({log.name.split(".")[0] for log in kept.glob("*.log")})
        assert "kube-controller-manager" in restarted, (
            f"the stall did not make the controller manager exit: {restarted}"
        )
        assert "failed to wait for apiserver being healthy" in (kept / "kube-controller-manager.0.log").read_text()
    except BaseException:
        native_cluster.down(name, keep_logs=False)
        raise
    finally:
        shutil.rmtree(kept, ignore_errors=True)
    assert native_cluster.down(name) is True
    assert not any(alive(pid) for pid in pids.values())
    gone = NativeCluster(name)
    assert not gone.home.exists() and not gone.kubeconfig.exists()
    assert not list(gone.workdir.glob(f"{name}*")), "files of the deleted cluster remain"
    assert native_cluster.down(name) is False  # nothing left to delete


def test_kubectl_on_a_cluster_that_is_not_there_fails_in_one_line():
    with pytest.raises(LabEnvError, match="no native cluster named no-such-cluster is running") as err:
        NativeCluster("no-such-cluster").kubectl("get", "nodes")
    assert "\n" not in str(err.value) and "lab-env cluster up" in str(err.value)
