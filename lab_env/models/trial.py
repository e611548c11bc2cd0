"""Trying a generated candidate on the live stack: its module becomes an
actor host behind a real sidecar, and a validation suite talks to it by the
host's app id (a plain string, so a grader can hand it to a learner's
function in another process).

    with trial.hosted(code, unique_name("candidate")) as host:   # host: the app id
        trial.call(host, "lamp", "Restock", 5)                    # the actor's answer
        trial.restart(host)                                       # SIGKILL app and sidecar, then start them again

Graded in a sandbox, the kernel cannot reach the hosts the grader runs: ``call`` and ``restart`` of
a host this process did not start then go to the worker's trial desk (lab_env/grading/trial_desk.py),
named by the kernel's environment.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ACTOR = "ProductAgent"  # the actor class the course's specification names
TRIAL_DESK_ENV, TRIAL_TOKEN_ENV = "LAB_ENV_TRIAL_DESK", "LAB_ENV_TRIAL_TOKEN"
DESK_PATIENCE = 600.0  # a restart under load takes seconds; this only stops a desk that never answers

_served: set[str] = set()  # the hosts hosted() runs in this process
_serving = threading.Lock()  # a host's end waits for a desk request on it (and the other way round)


@contextmanager
def while_served(host: str) -> Iterator[bool]:
    """Whether this process runs ``host`` now; it keeps running it until the block ends."""
    with _serving:
        yield host in _served


@contextmanager
def hosted(source: str, app_id: str, actor: str = ACTOR) -> Iterator[str]:
    """``source`` (a module defining an ASGI ``app``) running as an actor host with the state store; its app id.
    Stopped, with its folder, when the block ends."""
    from lab_env.errors import LabEnvError
    from lab_env.runtime.apps import start_app, stop_app, uvicorn_command

    if f"class {actor}" not in source:
        raise LabEnvError(f"the candidate defines no class {actor}", "ask for the specification's actor by its name")
    with tempfile.TemporaryDirectory(prefix="candidate-") as folder:
        (Path(folder) / "candidate.py").write_text(source)
        app = start_app(app_id, uvicorn_command("candidate:app"), cwd=folder, components=["statestore"])
        with _serving:
            _served.add(app.app_id)
        try:
            yield app.app_id
        finally:
            with _serving:
                _served.discard(app.app_id)
                stop_app(app)


def call(host: str, actor_id: str, method: str, body: object = None, actor: str = ACTOR) -> Any:
    """Call ``method`` of the actor ``actor_id`` on the candidate ``host``; its JSON answer."""
    from lab_env.runtime.actors import actor_type_in, invoke
    from lab_env.runtime.apps import load_app

    if _through_desk(host):
        return _desk("call", host=host, actor_id=actor_id, method=method, body=body, actor=actor)
    app = load_app(host)
    return invoke(app, actor_type_in(app, actor), actor_id, method, body)


def restart(host: str) -> None:
    """Kill the candidate's app and sidecar at once (no clean-up runs), then start both again; wait until healthy."""
    from lab_env.runtime.apps import load_app

    if _through_desk(host):
        _desk("restart", host=host)
        return
    app = load_app(host)
    app.crash()
    app.restart()


def _through_desk(host: str) -> bool:
    return host not in _served and bool(os.environ.get(TRIAL_DESK_ENV))


def _desk(what: str, **request: Any) -> Any:
    """One request to the grader's trial desk; its answer, or the error the call raised there."""
    from lab_env.errors import LabEnvError
    from lab_env.runtime.actors import ActorCallFailed
    from lab_env.runtime.sidecar import client

    token = os.environ.get(TRIAL_TOKEN_ENV, "")
    resp = client().post(
        os.environ[TRIAL_DESK_ENV],
        json={"what": what, **request},
        headers={"Authorization": f"Bearer {token}"},
        timeout=DESK_PATIENCE,
    )
    try:
        reply = resp.json()
    except ValueError:
        raise LabEnvError(f"the grader's trial desk answered {resp.status_code} with no JSON") from None
    if reply.get("error") == "ActorCallFailed":
        raise ActorCallFailed(
            request.get("actor", ACTOR), request["actor_id"], request["method"], reply["status"], reply["answer"]
        )
    if reply.get("error") == "LabEnvError":
        raise LabEnvError(reply["message"])
    if "error" in reply:  # what the call raised on the grader's side, by its name
        raise RuntimeError(f"{reply['error']}: {reply['message']}")
    return reply["answer"]


def method_source(source: str, cls: str, method: str) -> str:
    """The code of ``cls.method`` in a candidate's ``source`` (a note saying so when it has none)."""
    import ast

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == method:
                    return "    " + (ast.get_source_segment(source, item) or "")
    return f"(the candidate has no {cls}.{method})"
