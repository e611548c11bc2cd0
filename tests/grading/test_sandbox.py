"""The grading sandbox's container, as built (pure: no engine; tests/grading/test_grading_sandbox.py grades in it)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab_env.core import ports, procs
from lab_env.core.paths import REPO_ROOT
from lab_env.errors import LabEnvError
from lab_env.grading import sandbox
from lab_env.grading.sandbox import PORT_SLICES, Sandbox, choose, port_window, read_only_mounts, rootfs_tar
from lab_env.stack.engine import Engine


def _sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox("grade-ada-1f2e3d", tmp_path / "ada", 3, "1f2e3d")


def _mounts(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]


def test_nothing_of_the_repository_but_lab_env_and_components_is_mounted(tmp_path):
    mounts = _mounts(_sandbox(tmp_path).run_argv(tmp_path / "conn" / "kernel.json"))
    sources = [Path(m.split(":")[0]) for m in mounts]
    assert REPO_ROOT not in sources
    inside = [s for s in sources if s.is_relative_to(REPO_ROOT)]
    assert all(s.parts[len(REPO_ROOT.parts)] in {"lab_env", "components", ".venv"} for s in inside), inside
    assert not any("solutions" in s.parts or ".git" in s.parts or "tests" in s.parts for s in sources)


def test_only_the_submissions_own_folder_is_writable(tmp_path):
    box = _sandbox(tmp_path)
    writable = [m for m in _mounts(box.run_argv(tmp_path / "conn" / "kernel.json")) if m.endswith(":rw")]
    assert writable == [f"{box.job}:{box.job}:rw"]


def test_no_privilege_its_own_uid_and_the_hosts_loopback(tmp_path):
    argv = _sandbox(tmp_path).run_argv(tmp_path / "conn" / "kernel.json")
    text = " ".join(argv)
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges", "--read-only", "--network host"):
        assert flag in text
    assert "--privileged" not in argv and not any(a == "--pid" or a.startswith("--pid=") for a in argv)  # own pid ns
    assert argv[argv.index("--user") + 1] == "50003:50003"


def test_the_kernel_gets_a_named_environment_not_the_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-learners")
    argv = _sandbox(tmp_path).run_argv(tmp_path / "conn" / "kernel.json")
    env = [argv[i + 1] for i, a in enumerate(argv) if a == "-e"]
    assert not any(e.startswith("OPENAI_API_KEY=") for e in env)
    assert "LAB_RUN_TOKEN=1f2e3d" in env and "LAB_ENV_GRADING=1" in env


def test_the_image_is_only_links_and_mount_points():
    with tarfile.open(fileobj=io.BytesIO(rootfs_tar())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert all(m.isdir() or m.issym() for m in members.values())
    assert members["tmp"].mode == 0o1777


def test_read_only_mounts_do_not_nest():
    sources = [m.source for m in read_only_mounts()]
    assert len(sources) == len(set(sources))
    assert not any(a != b and b.is_relative_to(a) for a in sources for b in sources)


def test_sandboxes_and_their_workers_side_by_side_take_ports_from_disjoint_slices(monkeypatch):
    monkeypatch.delenv("LAB_ENV_PORT_WINDOW", raising=False)
    slices = []
    for slot in range(PORT_SLICES):
        for worker in (False, True):
            low, high = map(int, port_window(slot, worker).split("-"))
            slices.append(range(low, high + 1))
    whole, host = ports.whole_window(), ports.window()
    assert all(s.start >= whole.start and s.stop <= whole.stop for s in slices)
    # The host's own choices (the suite's other worker, the stack's apps) never land in a slice:
    # a sandbox cannot see the host's reservations, so a shared port could be chosen twice.
    ordered = sorted([*slices, host], key=lambda r: r.start)
    assert all(a.stop <= b.start for a, b in zip(ordered, ordered[1:], strict=False)), slices
    assert min(len(s) for s in slices) >= 500  # enough for a lab's apps, sidecars and brokers
    monkeypatch.setenv("LAB_ENV_PORT_WINDOW", port_window(3))
    assert ports.window() == slices[6]
    assert port_window(3, worker=True) == f"{slices[7].start}-{slices[7].stop - 1}"  # not a slice of the slice
    assert all(p in slices[6] for p in ports.free_ports(4))


_LEASE_IN_ANOTHER_PROCESS = """
from lab_env.grading.sandbox import lease_slot
with lease_slot() as slot:
    print(slot.number, flush=True)
"""
_HOLD_IN_ANOTHER_PROCESS = _LEASE_IN_ANOTHER_PROCESS + "    __import__('time').sleep(600)\n"


def test_a_slot_is_leased_machine_wide_not_per_grading(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))
    with sandbox.lease_slot() as first, sandbox.lease_slot() as second:
        assert (first.number, second.number) == (0, 1)
        # Another grading's worker (here, another process) gets neither while they are held ...
        other = subprocess.run([sys.executable, "-c", _LEASE_IN_ANOTHER_PROCESS], capture_output=True, text=True)
        assert other.stdout.split() == ["2"], other.stderr
    # ... and a slot whose holder was killed is free again.
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_IN_ANOTHER_PROCESS], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().split() == ["0"]
        with sandbox.lease_slot() as taken:
            assert taken.number == 1
    finally:
        holder.kill()
        holder.wait()
    with sandbox.lease_slot() as freed:
        assert freed.number == 0


def test_a_slot_stays_taken_while_the_worker_that_inherited_it_lives(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))
    with sandbox.lease_slot() as slot:  # as run.py hands it to the grading worker
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=(slot.fd,))
    try:  # `lab-env grade` let go (or died); the worker still holds it
        with sandbox.lease_slot() as other:
            assert other.number == 1
    finally:
        worker.kill()
        worker.wait()
    with sandbox.lease_slot() as again:
        assert again.number == 0


def test_a_grading_waits_for_a_slot_when_all_are_held(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))
    with contextlib.ExitStack() as held:
        held_numbers = [held.enter_context(sandbox.lease_slot()).number for _ in range(PORT_SLICES)]
        assert held_numbers == list(range(PORT_SLICES))
        waiting = subprocess.Popen(
            [sys.executable, "-c", _LEASE_IN_ANOTHER_PROCESS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert "waiting for a grading sandbox slot" in waiting.stderr.readline()  # said once it found none free
        assert waiting.poll() is None
    out, err = waiting.communicate(timeout=120)  # a safety net: the slots are free now
    assert out.split() == ["0"], err


def test_auto_sandboxes_only_where_a_local_engine_answers(monkeypatch):
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sandbox.engines, "find", lambda: None)
    assert choose("auto") == (None, "no Docker engine answers") and choose("off") == (None, "--sandbox off")
    with pytest.raises(LabEnvError, match="no Docker engine answers"):
        choose("on")
    remote = Engine("tcp://10.0.0.5:2376", False)
    monkeypatch.setattr(sandbox.engines, "find", lambda: remote)
    assert choose("auto")[0] is None and "not on this machine" in choose("auto")[1]
    with pytest.raises(LabEnvError, match="not on this machine"):
        choose("on")
    local = Engine("unix:///run/x/docker.sock", True)
    monkeypatch.setattr(sandbox.engines, "find", lambda: local)
    assert choose("auto") == (local, "") and choose("on") == (local, "") and choose("off")[0] is None
    assert choose("auto", "05_agent_homes")[0] is local and choose("auto", "07_capstone")[0] is local
    # a lab the sandbox cannot carry (none today) is graded without one by auto, refused by on
    monkeypatch.setattr(sandbox, "NOT_YET", {"05": "its checks need what the sandbox lacks"})
    assert choose("auto", "05_agent_homes")[0] is None and choose("auto", "07_capstone")[0] is local
    with pytest.raises(LabEnvError, match="lab 05 is not graded in a sandbox yet"):
        choose("on", "05_agent_homes")
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert choose("auto")[0] is None
    with pytest.raises(LabEnvError, match="not root"):
        choose("on")


def test_a_link_in_the_sandboxes_folder_does_not_let_a_process_out(tmp_path):
    box = Sandbox("lab-env-grade-x", tmp_path / "box", 1, "abc123")
    (box.workspace / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (box.workspace / "away").symlink_to(outside)
    procs.confine(procs.Confinement(box.job, box.exec_argv, {}))
    try:
        assert procs._confined(box.workspace / "sub") is not None
        assert procs._confined(box.workspace / "away") is not None  # resolves outside, written inside
        assert procs._confined(box.workspace / "sub" / ".." / "away") is not None
        (tmp_path / "into").symlink_to(box.workspace)
        assert procs._confined(tmp_path / "into") is not None  # written outside, resolves inside
        assert procs._confined(outside) is None
    finally:
        procs.confine(None)


def test_a_record_gives_the_worker_no_path_outside_the_sandbox(tmp_path):
    from lab_env.grading.sandbox_handles import _harmless

    box = Sandbox("lab-env-grade-x", tmp_path / "box", 1, "abc123")
    box.workspace.mkdir(parents=True)
    (box.workspace / "link").symlink_to(tmp_path)
    assert _harmless(box, "v2_patched") and _harmless(box, str(box.workspace / "ledger.db"))
    assert not _harmless(box, "/etc/passwd")
    assert not _harmless(box, str(box.workspace / ".." / ".." / "elsewhere.db"))
    assert not _harmless(box, str(box.workspace / "link" / "ledger.db"))


def test_the_runs_app_logs_are_kept_without_following_a_link_out(tmp_path):
    box = _sandbox(tmp_path)
    state = box.home / ".local" / "state" / "lab-env"
    (state / "apps" / "host-1f2e3d").mkdir(parents=True)
    (state / "apps" / "host-1f2e3d" / "app.log").write_text("started\n" + "x" * 50 + "the last line\n")
    (state / "apps" / "host-1f2e3d" / "ledger.db").write_bytes(b"data, not a log")
    os.mkfifo(state / "apps" / "host-1f2e3d" / "daprd.log")  # opened for reading, it would block forever
    (state / "apps" / "other-1f2e3d" / "app.log").mkdir(parents=True)  # a folder by a log's name
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "app.log").write_text("another submission's")
    (state / "apps" / "linked").symlink_to(tmp_path / "elsewhere")  # the learner's link to a folder elsewhere
    (state / "logs").mkdir()
    (state / "logs" / "stack.log").write_text("0123456789" * 3)
    (tmp_path / "grader-secret.log").write_text("the instructor's key")
    (state / "logs" / "planted.log").symlink_to(tmp_path / "grader-secret.log")
    with open(state / "logs" / "huge.log", "wb") as sparse:  # a terabyte that takes no room on disk
        sparse.truncate(10**12)
    (state / "logs" / "folder.log").mkdir()

    dest = tmp_path / "kept"
    fds = len(os.listdir("/proc/self/fd"))
    assert box.keep_logs(dest, limit=14, budget=20) == 2
    assert len(os.listdir("/proc/self/fd")) == fds, "a descriptor left open"
    assert (dest / "logs" / "stack.log").read_text() == "67890123456789", "lab-env's own first, the last `limit` bytes"
    assert (dest / "apps" / "host-1f2e3d" / "app.log").read_text() == " line\n", "what is left of the budget"
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "apps/host-1f2e3d/app.log",
        "logs/stack.log",
    ]


def test_a_workers_log_is_kept_too(tmp_path):
    # A Kafka node of lab 03's three-broker cluster once exited while starting in a graded run,
    # and nothing kept its output.
    box = _sandbox(tmp_path)
    node = box.home / ".local" / "state" / "lab-env" / "apps" / "trio-1f2e3d-node-2"
    node.mkdir(parents=True)
    (node / "worker.log").write_text("ERROR the reason it exited\n")
    assert box.keep_logs(tmp_path / "kept") == 1
    assert (tmp_path / "kept" / "apps" / "trio-1f2e3d-node-2" / "worker.log").read_text() == (
        "ERROR the reason it exited\n"
    )


def test_a_state_folder_linked_out_of_the_home_is_not_read(tmp_path):
    box = _sandbox(tmp_path)
    (tmp_path / "grader").mkdir()
    (tmp_path / "grader" / "worker.log").write_text("secret")
    (box.home / ".local" / "state").mkdir(parents=True)
    (box.home / ".local" / "state" / "lab-env").symlink_to(tmp_path / "grader")
    assert box.keep_logs(tmp_path / "kept") == 0
    assert not (tmp_path / "kept").exists()


class _Box:
    """Stands in for a Sandbox's exec (pure logic of the handle: what it asks, what it accepts)."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def exec_lab_env(self, engine, *args, timeout=300.0):
        self.asked.append(args)
        return self.answers[args[2]]


def test_lab_05s_cluster_is_asked_inside_the_sandbox_and_its_answers_are_checked():
    from lab_env.grading.sandbox_handles import sandboxed_native_cluster
    from lab_env.runtime.clusters.native import KubectlError

    box = _Box(
        {
            "status": {"running": "yes", "exited": ["etcd"]},  # only True is running
            "get": {"out": {"items": [{"metadata": {"name": "sellers"}}]}},
            "dry-run": {"refused": 'HorizontalPodAutoscaler.autoscaling "x" is invalid'},
        }
    )
    cluster = sandboxed_native_cluster(box, object(), "home-1a2b3c")
    assert cluster.running() is False and cluster.exited() == ["etcd"]
    assert cluster.get("deployments", namespace="shop")["items"][0]["metadata"]["name"] == "sellers"
    with pytest.raises(KubectlError, match="is invalid"):
        cluster.apply({"kind": "HorizontalPodAutoscaler"}, dry_run=True)
    assert box.asked[:3] == [("kube", "home-1a2b3c", "status")] * 2 + [
        ("kube", "home-1a2b3c", "get", "deployments", "shop")
    ]
    # the grader never runs the learner's kubeconfig itself, nor applies for real
    with pytest.raises(LabEnvError, match="never runs kubectl"):
        cluster.kubectl("get", "nodes")
    with pytest.raises(LabEnvError, match="only dry-runs"):
        cluster.apply({"kind": "Deployment"})
    box.answers["get"] = {"out": "not a list"}
    with pytest.raises(LabEnvError, match="not a list"):
        cluster.get("pods")
    with pytest.raises(LabEnvError, match="is not a cluster name"):
        sandboxed_native_cluster(box, object(), "../../root")
    # what the sandbox says is the learner's to forge: a malformed answer is no running cluster
    for forged in (["running"], {"running": True, "exited": "etcd"}, None):
        box.answers["status"] = forged
        assert cluster.exited() == [] and cluster.running() is (isinstance(forged, dict))
    # no cluster in there: the learner gets lab-env's own message, not a traceback's last line
    box.answers["get"] = {"error": ["no native cluster named home-1a2b3c is running", "start it"]}
    with pytest.raises(LabEnvError, match="no native cluster named") as missing:
        cluster.get("pods")
    assert missing.value.fix == "start it"


def test_the_checks_reach_clusters_through_the_hook_the_worker_sets():
    from lab_env.runtime.clusters import native

    found = []
    native.attach_clusters_with(lambda name: found.append(name) or native.NativeCluster(name))
    try:
        assert native.attach("home-x").name == "home-x" and found == ["home-x"]
    finally:
        native.attach_clusters_with(None)
    assert type(native.attach("home-x")) is native.NativeCluster


def test_a_markets_hosts_are_this_runs_own_whatever_its_record_names():
    from dataclasses import asdict

    from lab_env.grading.sandbox_handles import sandboxed_market
    from lab_env.marketplace.market.control import Catalog

    token = "1a2b3c"
    app, host1 = f"capstone-{token}", f"capstone-host1-{token}"
    forged = ["grader-host1-ffffff", f"other-host1-{token}", "capstone-host2-ffffff", "../capstone-host3-1a2b3c"]

    class Box:  # the record is the learner's to write, and so is what the sandbox says is running
        def __init__(self):
            self.token = token

        def exec_lab_env(self, engine, kind, name, what, timeout=300.0):
            if kind == "market":
                saved = {"app_id": app, "carrier": None, "replicas": [*forged, host1], "catalog": asdict(Catalog())}
                return {"saved": saved, "running": [app, host1, *forged]}
            port = 20000 + len(name)
            return {"app_id": name, "http_port": port, "grpc_port": port + 1, "app_port": None, "workdir": "/w"} | {
                "internal_port": port + 2
            }

    market = sandboxed_market(Box(), object(), app)
    assert [h.app_id for h in market.hosts] == [app, host1]
