"""The devcontainer, started for real: the Dev Containers CLI on devcontainer/local/devcontainer.json.

The workspace is built from devcontainer/Dockerfile on the bakery's stand-in
images; the CLI runs onCreate (make setup, lab-env setup --cli) and postStart
(lab-env up, lab-env doctor), and `up` fails unless both succeed. The
solution notebooks that need no container home or cluster of their own then
pass nbval inside the workspace, against the compose stack's Redis, Kafka,
placement and scheduler (the container profile).

Lab 05 is not run here: its agent homes start a cluster or containers of
their own, and the workspace reaches no engine it may use (devcontainer/README.md).
Lab 07 (the capstone) is left out for the suite's time budget; it runs natively.
"""

from __future__ import annotations

import pytest

from lab_env.core.paths import REPO_ROOT
from lab_env.stack import devcontainer_run
from lab_env.stack.images import bakery
from tests import own_engine

pytestmark = [pytest.mark.containers, pytest.mark.serial]
ours = own_engine.ours

NOTEBOOKS = ("01_actors", "02_pubsub", "03_kafka", "04_workflows", "06_coordination")


@pytest.fixture(scope="module")
def workspace(ours, tmp_path_factory):
    bakery.build(ours, list(devcontainer_run.IMAGES))
    folder = devcontainer_run.copy_repo(REPO_ROOT, tmp_path_factory.mktemp("devcontainer") / "labs")
    try:
        yield devcontainer_run.up(ours, folder)
    finally:
        devcontainer_run.down(ours, folder)
    left = ours.check(
        "ps", "-aq", "--filter", f"label=com.docker.compose.project={devcontainer_run.project_name(folder)}"
    )
    assert not left.split(), "compose down left containers"


def test_doctor_is_green_in_the_workspace_under_the_container_profile(ours, workspace):
    done = devcontainer_run.exec_in(
        ours, workspace, ["bash", "-c", "echo profile=$LAB_ENV_PROFILE; .venv/bin/lab-env doctor"]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "profile=container" in done.stdout
    for row in ("versions", "components", "stack", "round trip"):
        assert any(line.split()[:2] == ["ok", row.split()[0]] for line in done.stdout.splitlines()), (row, done.stdout)


def test_the_workspace_user_and_tools_are_where_the_devcontainer_expects(ours, workspace):
    probe = "id -un; id -u; kubectl version --client; kind version; helm version --short; go version; "
    probe += "~/.dapr/bin/daprd --version"
    done = devcontainer_run.exec_in(ours, workspace, ["bash", "-c", probe])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[:2] == ["vscode", "1000"], lines
    from lab_env.core.versions import pins
    from lab_env.stack.devcontainer import go_version

    tools = pins().tools
    for wanted in (
        f"v{tools['kubectl']}",
        f"v{tools['kind']}",
        f"v{tools['helm']}",
        f"go{go_version()}",
        pins().dapr_runtime,
    ):
        assert wanted in done.stdout, (wanted, done.stdout)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_solution_notebook_passes_nbval_in_the_workspace(ours, workspace, notebook):
    argv = [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"solutions/{notebook}.ipynb"]
    done = devcontainer_run.exec_in(ours, workspace, argv)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
