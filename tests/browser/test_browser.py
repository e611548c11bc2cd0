"""The learner's first steps, in a real browser: JupyterLab in Debian's
headless chromium, driven by Playwright, against the live stack.

For every lab: open the course's JupyterLab (started as `lab-env lab` starts
it, with a token), see the overview and no news prompt, open the student
notebook, run it cell by cell up to its first check and see the stack widget
green and the check's one-line ❌ with its hint; then answer as a learner
does, in the same page and kernel: the exercise cell gets the solution's
code, the cells from there to the check run again, and the check shows ✅.
(Every other cell up to the first check is the same in the lab and its
solution; a test below holds them to that.) Screenshots go to
test-artifacts/browser/.

JupyterLab serves a copy of labs/ and solutions/ (its autosave must never
write outputs into the repo's notebooks); the code they run is the repo's.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from lab_env.core.paths import REPO_ROOT
from lab_env.core.ports import free_ports
from lab_env.grading.generate import LABS_DIR, SOLUTIONS_DIR
from lab_env.labs.course import LABS, OVERVIEW_NAME
from lab_env.notebooks.jupyterlab import lab_command

pytestmark = pytest.mark.stack

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
# Debian's chromium package: /usr/bin/chromium is a wrapper script around this binary.
CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None
)
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# Safety nets against a hang, never pass/fail criteria: a busy 2-core machine may be slow.
CELL_LIMIT_MS = 600_000
UI_LIMIT_MS = 300_000
# How often a wait looks at the page: Playwright's default looks at every animation frame,
# which kept chromium busy for the whole of a long cell.
POLL_MS = 200
# A cell's run the page lost: the prompt shows no number while the kernel has been idle this long.
LOST_AFTER_S = 20
RUN_ATTEMPTS = 3
# No CSS animations or transitions: a headless chromium paints them in software, frame
# by frame, for as long as a cell runs (its busy indicators spin). What a test reads is the same.
STILL = "*, *::before, *::after { animation: none !important; transition: none !important; }"
AVAILABLE = [lab for lab in LABS if lab.available]
# Each page opens one notebook in a workspace of its own (see _open), so there is one panel.
NOTEBOOK = ".jp-NotebookPanel .jp-Notebook"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: `make test-tools` installs it (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make test-tools` installs the 'browser' dependency group")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """The course's JupyterLab on a free port, serving a copy of the notebooks."""
    root = tmp_path_factory.mktemp("jupyter-root")
    shutil.copytree(LABS_DIR, root / "labs")
    (root / "solutions").mkdir()
    for solution in SOLUTIONS_DIR.glob("*.ipynb"):
        # Without their stored outputs and prompt numbers: a cell's new number then shows it ran.
        nb = nbformat.read(solution, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, root / "solutions" / solution.name)
    # Test-only JupyterLab settings, next to the course's: every cell attached to the page
    # (the default windowing leaves far-off cells unrendered, out of a test's reach).
    labconfig = root / "test-config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "default_setting_overrides.json").write_text(
        '{"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}'
    )
    token = secrets.token_hex(16)
    (port,) = free_ports(1)
    argv, env = lab_command(port=port, root_dir=root)
    env["JUPYTER_CONFIG_PATH"] += os.pathsep + str(root / "test-config")
    argv.append("--LabApp.expose_app_in_browser=True")  # window.jupyterapp: run cells by command
    env["JUPYTER_TOKEN"] = token
    # No tabs restored from an earlier session: each would start a kernel.
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(root / "workspaces")
    log = open(root / "jupyter.log", "w")
    server = subprocess.Popen(
        argv, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:  # readiness: the server answers its API with the token
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, f"JupyterLab exited: {(root / 'jupyter.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "JupyterLab did not answer within 300 s"
            time.sleep(0.2)
        yield url, token, root
    finally:
        _stop_kernels((url, token, root))
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _stop_kernels(jupyter) -> None:
    """Shut the server's kernels down through its API: each stops the lab apps it started
    (left running, 14 kernels' apps and markets took CPU from every test after them)."""
    url, token, _ = jupyter
    try:
        for kernel in httpx.get(f"{url}/api/kernels", params={"token": token}, timeout=5).json():
            httpx.delete(f"{url}/api/kernels/{kernel['id']}", params={"token": token}, timeout=60)
    except httpx.HTTPError:
        pass


def _report_server(jupyter) -> None:
    """Print what the server saw (pytest shows it with the failure; CI keeps no artifacts)."""
    url, token, root = jupyter
    try:
        kernels = httpx.get(f"{url}/api/kernels", params={"token": token}, timeout=5).json()
        print("kernels:", [(k["name"], k["execution_state"], k["connections"]) for k in kernels])
    except httpx.HTTPError as error:
        print("kernels: the server did not answer:", error)
    print("jupyter.log (tail):\n" + (root / "jupyter.log").read_text(errors="replace")[-6000:])


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def _open(browser, url: str, token: str, path: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_LIMIT_MS)
    # A fresh workspace: the default one restores every tab an earlier page had open (the
    # overview), and a hidden tab's cells then match the locators and its kernel gets the runs.
    page.goto(f"{url}/lab/workspaces/{secrets.token_hex(4)}/tree/{path}?token={token}")
    page.add_style_tag(content=STILL)
    page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for(timeout=UI_LIMIT_MS)
    # The kernel is ready when the notebook's session is connected to it and it is idle. (The
    # toolbar's indicator says idle earlier, while the page still shows "No Kernel | Initializing":
    # a run asked for then opened JupyterLab's "Select Kernel" dialog, in CI and in a fresh clone.)
    page.wait_for_function(
        """() => {
            const element = document.querySelector('.jp-NotebookPanel');
            let panel = null;
            for (const widget of window.jupyterapp.shell.widgets('main')) {
                if (element && widget.id === element.id) panel = widget;
            }
            const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
            return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }""",
        timeout=UI_LIMIT_MS,
        polling=POLL_MS,
    )
    assert page.locator(".jp-NotebookPanel").count() == 1, "another notebook tab was restored"
    return page


def _first_check(path: Path) -> int:
    cells = nbformat.read(path, as_version=4).cells
    return next(i for i, c in enumerate(cells) if "check" in c.get("metadata", {}).get("lab_env", {}))


def _run_through(page, jupyter, last: int, first: int = 0) -> dict[int, str]:
    """Run the code cells among first..last one at a time, as a learner pressing
    Shift+Enter does (through JupyterLab's run-cell command, which runs the
    selected cell); return each one's output text. A cell that fails does not
    stop the walk."""
    outputs: dict[int, str] = {}
    for index in range(first, last + 1):
        cell = page.locator(f"{NOTEBOOK} .jp-Cell[data-windowed-list-index='{index}']")
        # JupyterLab skips rendering cells off screen (content-visibility): scroll there first.
        cell.evaluate("el => el.scrollIntoView({block: 'center'})")
        if "jp-CodeCell" not in (cell.get_attribute("class") or ""):
            continue  # markdown shows rendered already
        try:
            _run_cell(page, jupyter, cell, index)
        except Exception:
            _shot(page, f"failed-at-cell-{index}")  # what the learner would see
            raise
        outputs[index] = cell.locator(".jp-OutputArea").inner_text()
    return outputs


def _run_cell(page, jupyter, cell, index: int) -> None:
    """Run one cell and wait until its prompt shows a number. The run is asked for
    without waiting on the command's promise: in CI that promise once never settled and
    the test hung 15 minutes with the kernel idle. Instead the prompt is watched, and a
    run the page lost (the prompt stuck while the server's kernel has been idle for
    LOST_AFTER_S) is asked for again, as a learner would press Shift+Enter again."""
    prompt = cell.locator(".jp-InputPrompt").first
    deadline = time.monotonic() + CELL_LIMIT_MS / 1000
    for _ in range(RUN_ATTEMPTS):
        _dismiss_lost_connection(page, jupyter, index, deadline)
        prompt.click()  # selects the cell without editing it
        # JupyterLab's run-cell command, called directly: no dependence on keyboard focus.
        page.evaluate("""() => {
            const app = window.jupyterapp;
            app.shell.activateById(document.querySelector('.jp-NotebookPanel').id);
            void app.commands.execute('notebook:run-cell');
        }""")
        idle_since = None
        next_server_look = 0.0
        while time.monotonic() < deadline:
            if re.search(r"\[\d+\]", prompt.inner_text()):
                return
            dialog = page.locator(".jp-Dialog")
            if dialog.count():
                text = dialog.first.inner_text()
                if text.startswith(CONNECTION_LOST):
                    _dismiss_lost_connection(page, jupyter, index, deadline)
                    continue
                if not text.startswith("Select Kernel"):
                    raise AssertionError(f"cell {index}: JupyterLab asks {text!r}")
                # The notebook's own kernel, as a learner accepts it; then the run is asked again.
                print(f"cell {index}: JupyterLab asked for a kernel; selected its default")
                dialog.first.locator(".jp-mod-accept").click()
                break
            if time.monotonic() >= next_server_look:  # the server is asked once a second, the page more often
                next_server_look = time.monotonic() + 1
                if _kernels_idle(jupyter):
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= LOST_AFTER_S:
                        print(f"cell {index}: no result shown after {LOST_AFTER_S} s of an idle kernel, run again")
                        break
                else:
                    idle_since = None
            page.wait_for_timeout(POLL_MS)
        else:
            raise AssertionError(f"cell {index} showed no result within {CELL_LIMIT_MS // 1000} s")
    raise AssertionError(f"cell {index}: {RUN_ATTEMPTS} runs asked for and none showed a result")


# One keep-alive client for _kernels_idle, asked every second of every walk (a new client costs ~50 ms of CPU).
_SERVER = httpx.Client()


# JupyterLab's dialog when a request to its server fails; it keeps retrying behind it, but the
# dialog stays and blocks every click. Seen once in a full suite on a loaded 2-core machine.
CONNECTION_LOST = "Server Connection Error"


def _server_answers(jupyter) -> bool:
    url, token, _ = jupyter
    try:
        return _SERVER.get(f"{url}/api/status", params={"token": token}, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _dismiss_lost_connection(page, jupyter, index: int, deadline: float) -> None:
    """If JupyterLab says it lost its server: once the server answers again, dismiss the
    dialog, as a learner would, and go on. A server that never answers fails the walk."""
    dialog = page.locator(".jp-Dialog")
    if not dialog.count() or not dialog.first.inner_text().startswith(CONNECTION_LOST):
        return
    while not _server_answers(jupyter):
        if time.monotonic() >= deadline:
            raise AssertionError(f"cell {index}: JupyterLab lost its server, which never answered again")
        page.wait_for_timeout(POLL_MS)
    print(f"cell {index}: JupyterLab showed {CONNECTION_LOST!r}; the server answers again, dismissed")
    dialog.first.locator(".jp-Dialog-button").last.click()


def _kernels_idle(jupyter) -> bool:
    """Whether the server's kernels are all idle (the page runs one at a time)."""
    url, token, _ = jupyter
    try:
        kernels = _SERVER.get(f"{url}/api/kernels", params={"token": token}, timeout=5).json()
    except httpx.HTTPError:
        return False
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


def test_jupyterlab_opens_on_the_course_overview_without_the_news_prompt(browser, jupyter):
    url, token, _ = jupyter
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_LIMIT_MS)
    page.goto(f"{url}/?token={token}")  # where the URL `make lab` prints leads
    overview = page.locator(".jp-Notebook")
    overview.first.wait_for(timeout=UI_LIMIT_MS)
    page.locator(".jp-RenderedMarkdown h1", has_text="course overview").wait_for(timeout=UI_LIMIT_MS)
    assert page.locator(f"li.lm-TabBar-tab[title*='{OVERVIEW_NAME}']").count() == 1
    # The file browser shows the labs folder.
    page.locator(".jp-DirListing-item[title*='01_actors.ipynb']").first.wait_for(timeout=UI_LIMIT_MS)
    # The course's settings answer the news question for the learner, so JupyterLab never asks.
    # (Overrides become the settings' defaults; JupyterLab's own default for fetchNews is "none": ask.)
    schema = httpx.get(
        f"{url}/lab/api/settings/@jupyterlab/apputils-extension:notification", params={"token": token}, timeout=10
    ).json()["schema"]["properties"]
    assert schema["fetchNews"]["default"] == "false" and schema["checkForUpdates"]["default"] is False
    assert page.get_by_text("Jupyter news", exact=False).count() == 0
    progress = _run_through(page, jupyter, 1)[1]  # the overview's progress cell
    assert "checks passed" in progress and "Agents as virtual actors" in progress, progress
    _shot(page, "00-overview")
    page.close()
    _stop_kernels(jupyter)


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.number)
def test_a_learner_runs_the_lab_to_its_first_check_then_answers_it(browser, jupyter, lab):
    try:
        _walk(browser, jupyter, lab)
    except BaseException:
        # Pages still open are the ones the walk was on: what the learner would have seen.
        for n, page in enumerate(p for context in browser.contexts for p in context.pages):
            _shot(page, f"failed-{lab.number}-page-{n}")
        _report_server(jupyter)
        raise


def _walk(browser, jupyter, lab) -> None:
    url, token, _ = jupyter
    last = _first_check(LABS_DIR / lab.notebook)
    check_name = nbformat.read(LABS_DIR / lab.notebook, as_version=4).cells[last].source.strip()

    page = _open(browser, url, token, f"labs/{lab.notebook}")
    outputs = _run_through(page, jupyter, last)
    setup = outputs[min(outputs)]
    assert all(f"{name}" in setup for name in ("redis", "kafka", "placement", "scheduler")), setup
    assert setup.count("ready") >= 4, f"the stack widget is not all green: {setup}"
    failed = outputs[last]
    assert failed.startswith("\u274c") and "Hint:" in failed, f"{check_name}: {failed!r}"
    assert len(failed.strip().splitlines()) == 2, f"not one line and its hint: {failed!r}"
    for index, text in outputs.items():  # no SDK traceback anywhere on the learner's path
        assert "Traceback" not in text and "site-packages" not in text, f"cell {index}: {text[:600]}"
    page.locator(f"{NOTEBOOK} .jp-Cell[data-windowed-list-index='{last}']").evaluate(
        "el => el.scrollIntoView({block: 'center'})"
    )
    _shot(page, f"{lab.number}-lab-first-check")

    # The learner answers: the exercise cell gets the solution's code, and the cells from there run again
    # (a start cell run again replaces the app it started, so the check sees the new code).
    (exercise,) = _exercise_cells(lab)
    solution = nbformat.read(SOLUTIONS_DIR / lab.notebook, as_version=4).cells[exercise].source
    _type_answer(page, exercise, solution)
    outputs = _run_through(page, jupyter, last, first=exercise)
    passed = outputs[last]
    assert re.match(r"\u2705 .+: passed", passed.strip()), passed
    _shot(page, f"{lab.number}-answered-first-check")
    page.close()
    _stop_kernels(jupyter)


def _exercise_cells(lab) -> list[int]:
    """The cells up to the first check where the lab and its solution differ."""
    ours = nbformat.read(LABS_DIR / lab.notebook, as_version=4).cells
    theirs = nbformat.read(SOLUTIONS_DIR / lab.notebook, as_version=4).cells
    last = _first_check(LABS_DIR / lab.notebook)
    assert _first_check(SOLUTIONS_DIR / lab.notebook) == last
    return [i for i in range(last + 1) if ours[i].source != theirs[i].source]


def _type_answer(page, index: int, source: str) -> None:
    """Put source into the notebook's cell index, through the cell's model, as typing would."""
    held = page.evaluate(
        """([index, source]) => {
            // The page's one notebook panel (_open asserts there is one).
            const element = document.querySelector('.jp-NotebookPanel');
            const panel = [...window.jupyterapp.shell.widgets('main')].find(widget => widget.id === element.id);
            const model = panel.content.widgets[index].model.sharedModel;
            model.setSource(source);
            return model.getSource();
        }""",
        [index, source],
    )
    assert held == source, f"cell {index} does not hold the answer: {held[:200]!r}"


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.number)
def test_each_lab_differs_from_its_solution_in_one_cell_before_its_first_check(lab):
    # What the walk above relies on: answering that one cell turns the lab into its solution up to the check.
    assert len(_exercise_cells(lab)) == 1
