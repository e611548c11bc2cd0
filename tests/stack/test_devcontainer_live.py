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

import secrets

import httpx
import nbformat
import pytest

from lab_env.core.paths import REPO_ROOT
from lab_env.core.probes import wait_until
from lab_env.stack import devcontainer_run
from lab_env.stack.images import bakery
from tests import own_engine

# The first start builds the workspace image and fills the caches (about 5 minutes here, more on
# a busy machine): the limit is a net for a hang, not a speed requirement.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(3600)]
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


def test_zipkin_answers_the_workspace_at_its_compose_name(ours, workspace):
    # Nothing waits for zipkin (it is optional), so it may still be starting.
    def up() -> bool:
        done = devcontainer_run.exec_in(ours, workspace, ["curl", "-sf", "http://zipkin:9411/health"])
        return done.returncode == 0 and '"UP"' in done.stdout

    wait_until(up, 180.0, "zipkin to answer at zipkin:9411 from the workspace")


def test_solution_notebooks_pass_nbval_in_the_workspace(ours, workspace):
    """Two at a time, as the native suite runs them (xdist from the test group, synced here)."""
    sync = [".tools/bin/uv", "sync", "--frozen", "--inexact", "--group", "test", "--python", "python3"]
    synced = devcontainer_run.exec_in(ours, workspace, sync)
    assert synced.returncode == 0, synced.stderr[-2000:]
    notebooks = [f"solutions/{name}.ipynb" for name in NOTEBOOKS]
    argv = [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile"]
    done = devcontainer_run.exec_in(ours, workspace, [*argv, *notebooks])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    # nbval makes one test of each code cell: every cell of every notebook ran and passed.
    cells = sum(c.cell_type == "code" for name in notebooks for c in nbformat.read(REPO_ROOT / name, 4).cells)
    assert summary.startswith(f"{cells} passed"), summary


def test_jupyterlab_in_the_workspace_serves_a_lab_through_a_forwarded_port(ours, workspace):
    """`lab-env lab` (what `make lab` runs) in the workspace; the browser opens lab 01 through the
    port forwarded as an editor forwards it, and its setup cell shows the stack all ready."""
    from tests.browser import test_browser as page_tools

    if page_tools.CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: `make test-tools` installs it")
    from playwright.sync_api import sync_playwright

    token = secrets.token_hex(16)
    # window.jupyterapp, which the page helpers run cells through: a test-only setting.
    start = (
        'mkdir -p /tmp/lab-test && echo \'{"LabApp": {"expose_app_in_browser": true}}\' '
        "> /tmp/lab-test/jupyter_server_config.json && "
        f"JUPYTER_TOKEN={token} JUPYTER_CONFIG_PATH=/tmp/lab-test setsid nohup .venv/bin/lab-env lab --port 8888 "
        "> /tmp/lab-test/lab.log 2>&1 < /dev/null &"
    )
    assert devcontainer_run.exec_in(ours, workspace, ["bash", "-c", start]).returncode == 0
    with devcontainer_run.forwarded(ours, workspace, 8888) as url:

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/api/status", params={"token": token}, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 300, "JupyterLab in the workspace to answer through the forwarded port")
        assert httpx.get(f"{url}/api/status", timeout=5).status_code == 403, "JupyterLab must keep its token"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=page_tools.CHROMIUM, args=page_tools.LAUNCH_FLAGS, headless=True
            )
            try:
                page = page_tools._open(browser, url, token, "labs/01_actors.ipynb")
                setup_cell = next(
                    i
                    for i, c in enumerate(nbformat.read(REPO_ROOT / "labs" / "01_actors.ipynb", 4).cells)
                    if c.cell_type == "code"
                )
                setup = page_tools._run_through(page, (url, token, None), setup_cell)[setup_cell]
            finally:
                page_tools._stop_kernels((url, token, None))
                browser.close()
    assert all(name in setup for name in ("redis", "kafka", "placement", "scheduler")), setup
    assert setup.count("ready") >= 4, setup
