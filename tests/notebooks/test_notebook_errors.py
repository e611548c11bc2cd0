"""Errors from a learner's app show as one line in a real kernel, with the
traceback on demand, and a stack service or sidecar that is down is named
with its fix (lab_env.notebooks.tracebacks). Runs against the live stack."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from lab_env.grading.execute import execute
from lab_env.stack import status, up

APPS = Path(__file__).parents[1] / "apps"
pytestmark = pytest.mark.stack

SETUP = f"""%load_ext lab_env.notebooks.magics
import sys
sys.path.insert(0, {str(APPS)!r})
from dapr.actor import ActorId, ActorProxy
from lab_env import start_app, stop_app, unique_name, uvicorn_command
from lab_env.runtime.actors import actor_type
from unfinished_actor import ShelfInterface

shelf = start_app(unique_name("shelf"), uvicorn_command("unfinished_actor:app"), cwd={str(APPS)!r},
                  components=["statestore"])
shelf.use_sdk()
SHELF = actor_type("ShelfActor")
print(shelf.app_id)"""

CELLS = {
    "setup": SETUP,
    "unfinished": 'await ActorProxy.create(SHELF, ActorId("s-1"), ShelfInterface).Restock(3)',
    "traceback": "%tb",
    "redis_down": (
        'from lab_env.stack.lifecycle import _stop_service\n_stop_service("redis")\n'
        'await ActorProxy.create(SHELF, ActorId("fresh-1"), ShelfInterface).Count()'
    ),
    "redis_back": "from lab_env.stack import up\nup(progress=False)\nprint('up')",
    "sidecar_down": ('shelf.crash()\nawait ActorProxy.create(SHELF, ActorId("s-2"), ShelfInterface).Count()'),
    "cleanup": "stop_app(shelf)",
    "stub": (
        "def reserve(n):\n    # YOUR CODE HERE\n"
        '    raise NotImplementedError("exercise not done yet: gather the calls")\n\nreserve(3)'
    ),
}


def _error_lines(cell: nbformat.NotebookNode) -> list[str]:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert errors, f"no error in: {cell.source}"
    return errors[0].traceback


@pytest.mark.serial  # it stops the shared stack's Redis
def test_errors_from_apps_and_the_stack_show_as_one_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=name) for name, source in CELLS.items()]
    path = tmp_path / "errors.ipynb"
    nbformat.write(nb, path)
    try:
        ran = {c.id: c for c in execute(path, allow_errors=True, timeout=300).cells}
    finally:
        up(progress=False)  # the notebook stopped Redis; bring it back whatever happened
    app_id = ran["setup"].outputs[-1].text.strip()

    # The learner's own message, where it came from, and how to see the rest: one line.
    lines = _error_lines(ran["unfinished"])
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"\u274c ShelfActor.Restock (actor s-1, app {app_id}) raised NotImplementedError: "
        "exercise not done yet: add quantity to the stored 'stock'"
    ), lines[0]
    assert "%tb" in lines[0] and f"lab-env logs {app_id} --app" in lines[0]
    # %tb still shows the SDK's whole traceback.
    full = "\n".join(_error_lines(ran["traceback"]))
    assert "dapr" in full and "site-packages" in full and len(full.splitlines()) > 10

    lines = _error_lines(ran["redis_down"])
    assert len(lines) == 1 and "redis is not running -> run `lab-env up`" in lines[0], lines
    assert "up" in ran["redis_back"].outputs[-1].text

    lines = _error_lines(ran["sidecar_down"])
    assert len(lines) == 1 and f"the sidecar of lab app {app_id} is not answering" in lines[0], lines
    assert all(s.ready for s in status())

    # An exercise stub the learner has not replaced: its name and the hint.
    assert _error_lines(ran["stub"]) == ["\u274c `reserve` is an exercise not done yet -> gather the calls"]


def test_other_errors_keep_their_usual_traceback(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "%load_ext lab_env.notebooks.magics\nimport httpx\nhttpx.get('http://127.0.0.1:9/', timeout=2)"
        ),
        nbformat.v4.new_code_cell("1 / 0"),
    ]
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    ran = execute(path, allow_errors=True, timeout=120).cells
    # Port 9 is neither a lab app nor a stack service: nothing to explain, the traceback stays.
    assert len(_error_lines(ran[0])) > 1
    assert any("ZeroDivisionError" in line for line in _error_lines(ran[1]))


def test_a_reset_connection_names_the_sidecar_from_the_request_being_made(tmp_path, monkeypatch):
    """A sidecar killed mid-call can reset the connection ("Connection reset by
    peer", no address in the error): the port comes from the request's URL."""
    import json
    import sys

    import aiohttp

    from lab_env.notebooks.tracebacks import explain

    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "shelf-abc123.json").write_text(json.dumps({"http_port": 43999, "grpc_port": 43998}))

    def send(url: str):
        raise aiohttp.ClientOSError(104, "Connection reset by peer")

    try:
        send("http://127.0.0.1:43999/v1.0/actors/ShelfActor/s-2/method/Count")
    except aiohttp.ClientOSError as err:
        line = explain(err, sys.exc_info()[2])
    assert line and line.startswith("\u274c the sidecar of lab app shelf-abc123 is not answering (port 43999)"), line
    try:
        send("http://127.0.0.1:43997/elsewhere")  # no lab app there: the usual traceback
    except aiohttp.ClientOSError as err:
        assert explain(err, sys.exc_info()[2]) is None or "shelf-abc123" not in explain(err, sys.exc_info()[2])
