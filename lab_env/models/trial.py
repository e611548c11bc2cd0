"""Trying a generated candidate on the live stack: its module becomes an
actor host behind a real sidecar, and a validation suite talks to it by the
host's app id (a plain string, so a grader can hand it to a learner's
function in another process).

    with trial.hosted(code, unique_name("candidate")) as host:   # host: the app id
        trial.call(host, "lamp", "Restock", 5)                    # the actor's answer
        trial.restart(host)                                       # SIGKILL app and sidecar, then start them again
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ACTOR = "ProductAgent"  # the actor class the course's specification names


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
        try:
            yield app.app_id
        finally:
            stop_app(app)


def call(host: str, actor_id: str, method: str, body: object = None, actor: str = ACTOR) -> Any:
    """Call ``method`` of the actor ``actor_id`` on the candidate ``host``; its JSON answer."""
    from lab_env.runtime.actors import actor_type_in, invoke
    from lab_env.runtime.apps import load_app

    app = load_app(host)
    return invoke(app, actor_type_in(app, actor), actor_id, method, body)


def restart(host: str) -> None:
    """Kill the candidate's app and sidecar at once (no clean-up runs), then start both again; wait until healthy."""
    from lab_env.runtime.apps import load_app

    app = load_app(host)
    app.crash()
    app.restart()


def method_source(source: str, cls: str, method: str) -> str:
    """The code of ``cls.method`` in a candidate's ``source`` (a note saying so when it has none)."""
    import ast

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == method:
                    return "    " + (ast.get_source_segment(source, item) or "")
    return f"(the candidate has no {cls}.{method})"
