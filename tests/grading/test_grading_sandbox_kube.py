"""Lab 05 graded in its sandbox: the checks that read the learner's Kubernetes cluster run
kubectl **inside** the sandbox (grading/inside.py `kube`), because the cluster's kubeconfig is
the learner's to write and a kubeconfig can name a command for kubectl to run.

The cheat: a notebook that hands the autoscaler check a cluster of its own whose kubeconfig's
credential plugin writes a file on the grading machine. Graded without a sandbox the file
appears (root's kubectl ran the learner's command: the cheat works); in the sandbox it does not.
"""

from __future__ import annotations

import json
import secrets

import nbformat
import pytest

from lab_env.grading import grade_folder
from lab_env.grading.spec import load_spec
from tests import own_engine

# Serial: the native stack and the engine. The timeout is a safety net only.
pytestmark = [pytest.mark.stack, pytest.mark.containers, pytest.mark.serial, pytest.mark.timeout(3600)]
ours = own_engine.ours  # the fixture
CELL_TIMEOUT = 600  # a safety net; lab 05's slowest cell starts a cluster


def _kubeconfig(canary: str) -> str:
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": "x"}}
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "/bin/sh",
        "args": ["-c", f"touch {canary}; echo '{json.dumps(credential)}'"],
        "interactiveMode": "Never",
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"exec": plugin}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def _cheat(canary: str) -> nbformat.NotebookNode:
    """Lab 05's solution with, in its first answer, code that makes the cluster the notebook
    starts report its name as `cheat`, a cluster that is only a kubeconfig of the learner's.
    (The grader keeps only answers: a cell of its own would be dropped.)"""
    nb = nbformat.read(load_spec("05").solution, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    answer = next(c for c in nb.cells if c.cell_type == "code" and 'SPEC["agents"].append({' in c.source)
    lines = answer.source.split("\n")
    at = max(i for i, line in enumerate(lines) if line.startswith("### HINT")) + 1
    lines[at:at] = f"""from lab_env.core.paths import state_dir
from lab_env.runtime.clusters import native as cheat_clusters

(state_dir() / "kwok").mkdir(parents=True, exist_ok=True)
(state_dir() / "kwok" / "cheat.kubeconfig").write_text({_kubeconfig(canary)!r})


class Cheat:  # the notebook's cluster in every way but its name
    name = "cheat"

    def __init__(self, real):
        self.real = real

    def __getattr__(self, attribute):
        return getattr(self.real, attribute)


cheat_up = cheat_clusters.up
cheat_clusters.up = lambda *args, **kwargs: Cheat(cheat_up(*args, **kwargs))""".split("\n")
    answer.source = "\n".join(lines)
    return nb


@pytest.mark.parametrize("sandbox", ["off", "on"])
def test_a_kubeconfigs_command_runs_on_the_grading_machine_only_without_a_sandbox(ours, tmp_path, sandbox):
    canary = tmp_path / f"ran-as-the-grader-{secrets.token_hex(4)}"  # the sandbox's /tmp is its own
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(_cheat(str(canary)), folder / "kube.ipynb")
    results, _ = grade_folder(folder, "05", cell_timeout=CELL_TIMEOUT, timeout=1800, progress=False, sandbox=sandbox)
    got = results[0]
    assert got.status == "graded" and got.sandboxed == (sandbox == "on"), (got.reason, got.notes)
    autoscaler = next(c for c in got.checks if c.name == "autoscaler")
    # no API server behind the kubeconfig, either way; kube_home finds no cluster `cheat` running
    assert [c.name for c in got.checks if not c.passed] == ["autoscaler", "kube_home"], [
        (c.name, c.message) for c in got.checks
    ]
    if sandbox == "off":
        assert canary.exists(), f"the cheat did not work without a sandbox: {autoscaler.message}"
    else:
        assert not canary.exists(), "the learner's kubeconfig ran a command on the grading machine"
    # Either way kubectl ran with the learner's kubeconfig (here or in the sandbox) and found no
    # API server behind it: not a cluster the check could not find at all.
    assert "the API server refused autoscaler" in autoscaler.message, autoscaler.message
