"""One line instead of a Dapr SDK traceback, in a lab notebook.

An exercise stub a learner has not replaced yet raises NotImplementedError:
the notebook names the function and gives the stub's hint. When a
learner's code fails inside an app (an actor method, a route), the
caller in the notebook gets an SDK error whose traceback is 40 lines of
aiohttp and Dapr internals, with the useful part buried in it. When a stack
service or a sidecar is down, it gets a connection error. For these errors
the notebook shows one line instead:

    ❌ ProductActor.Restock (actor laptop-15, app marketplace-3f2a) raised NotImplementedError:
       exercise not done yet: … | full traceback: %tb | app log: lab-env logs marketplace-3f2a

``%tb`` still prints the whole traceback. The cell still fails (a
"Run All" stops there, nbval sees the error); only what is shown changes.
``%load_ext lab_env.notebooks.magics`` (every lab's first cell) installs it.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import types
from dataclasses import dataclass

from lab_env.grading.generate import STUB_MESSAGE

# A Python exception as the Dapr SDK's actor host reports it: repr(ex).
_REMOTE = re.compile(r"\b(?P<type>[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning))\((?P<args>.*)\)", re.S)
_PORT = re.compile(r"(?:127\.0\.0\.1|localhost):(?P<port>\d+)")


@dataclass
class ActorCall:
    actor_type: str
    actor_id: str
    method: str


def _actor_call(tb: types.TracebackType | None) -> ActorCall | None:
    """The actor call in progress when ``tb`` was raised, from the SDK's frames."""
    found = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        if tb.tb_frame.f_code.co_name == "invoke_method":
            if {"actor_type", "actor_id", "method"} <= local.keys():  # DaprActorHttpClient.invoke_method
                found = ActorCall(str(local["actor_type"]), str(local["actor_id"]), str(local["method"]))
            elif "self" in local and hasattr(local["self"], "_actor_type") and "method" in local:  # ActorProxy
                proxy = local["self"]
                found = ActorCall(str(proxy._actor_type), str(getattr(proxy, "_actor_id", "?")), str(local["method"]))
        tb = tb.tb_next
    return found


def _remote_exception(message: str) -> str | None:
    """'NotImplementedError: exercise not done yet' from the app's repr(ex).

    daprd passes the app's answer on inside its own message:
    'error invoke actor method: error from actor service: (500) {"message": "NotImplementedError(...)", ...}'."""
    message = message or ""
    brace = message.find("{")
    if brace >= 0:
        try:
            body, _ = json.JSONDecoder().raw_decode(message[brace:])
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                message = body["message"]
        except ValueError:
            pass
    match = _REMOTE.search(message)
    if not match:
        return None
    args = match["args"].strip()
    try:
        value = ast.literal_eval(args) if args else ""
        text = (
            value if isinstance(value, str) else ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
        )
    except (ValueError, SyntaxError):
        text = args
    return f"{match['type']}: {text}" if text else match["type"]


def _short_type(actor_type: str) -> str:
    """'ProductActor-3f2a9c' -> 'ProductActor' (lab_env.runtime.actors.for_this_run adds the suffix)."""
    return actor_type.split("-", 1)[0]


def _app_hosting(actor_type: str) -> str | None:
    """Which running lab app registered ``actor_type`` (asks each sidecar's metadata)."""
    from lab_env.runtime import sidecar
    from lab_env.runtime.apps import load_app, running_apps

    for app_id in running_apps():
        try:
            app = load_app(app_id)
            meta = sidecar.get(app, sidecar.METADATA, timeout=1).json()
        except Exception:  # a dying app: not the one to name
            continue
        actors = meta.get("actors") or meta.get("actorRuntime", {}).get("activeActors", [])
        if any(a.get("type") == actor_type for a in actors):
            return app_id
    return None


def _app_on_port(port: int) -> tuple[str, str] | None:
    """(app id, 'sidecar' or 'app') of the lab app listening, or meant to listen, on ``port``."""
    from lab_env.runtime.apps import _read_record, apps_dir

    if not apps_dir().exists():
        return None
    for path in apps_dir().glob("*.json"):
        record = _read_record(path.stem) or {}
        if record.get("http_port") == port or record.get("grpc_port") == port:
            return path.stem, "sidecar"
        if record.get("app_port") == port:
            return path.stem, "app"
    return None


def _stack_down() -> list[str]:
    from lab_env.stack import status

    try:
        return [s.name for s in status() if not s.ready]
    except Exception:
        return []


def _port_in(err: BaseException) -> int | None:
    for candidate in (err, err.__cause__, err.__context__):
        if candidate is None:
            continue
        host = getattr(candidate, "port", None) or getattr(getattr(candidate, "request", None), "url", None)
        if isinstance(host, int):
            return host
        match = _PORT.search(f"{candidate} {host or ''}")
        if match:
            return int(match["port"])
    return None


def _port_in_traceback(tb: types.TracebackType | None) -> int | None:
    """A lab app's port named in the failing call's frames (a request URL, say).

    Some connection errors carry no address: a connection the sidecar reset
    as it died says only "Connection reset by peer".
    """
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first: the request being made
        for value in list(frame.f_locals.values()):
            text = value if isinstance(value, str) else str(value) if type(value).__name__ == "URL" else None
            match = _PORT.search(text) if text else None
            if match and _app_on_port(int(match["port"])):
                return int(match["port"])
    return None


def _sdk_error_types() -> tuple[type[BaseException], ...]:
    from dapr.clients.exceptions import DaprInternalError

    return (DaprInternalError, NotImplementedError)


def _connection_error_types() -> tuple[type[BaseException], ...]:
    import aiohttp
    import httpx

    return (ConnectionError, aiohttp.ClientConnectionError, httpx.ConnectError, httpx.RemoteProtocolError)


def _innermost_function(tb: types.TracebackType | None) -> str | None:
    """The learner's function that raised, or None for a cell's own code (or a lab_env magic's)."""
    frame = None
    while tb is not None:
        frame = tb.tb_frame
        tb = tb.tb_next
    if frame is None or frame.f_code.co_name == "<module>" or frame.f_globals.get("__name__", "").startswith("lab_env"):
        return None
    return frame.f_code.co_name


def explain(err: BaseException, tb: types.TracebackType | None) -> str | None:
    """The one line for ``err``, or None to show the usual traceback."""
    more = "full traceback: %tb"
    if isinstance(err, NotImplementedError) and str(err).startswith(STUB_MESSAGE):
        function = _innermost_function(tb)
        hint = str(err)[len(STUB_MESSAGE) :].lstrip(": ")
        return f"\u274c {f'`{function}`' if function else 'this cell'} is an exercise not done yet" + (
            f" -> {hint}" if hint else " -> write it where the cell says # YOUR CODE HERE"
        )
    if isinstance(err, _sdk_error_types()):
        message = getattr(err, "message", None) or str(err)
        call = _actor_call(tb)
        where = ""
        app_id = None
        if call:
            app_id = _app_hosting(call.actor_type)
            where = (
                f"{_short_type(call.actor_type)}.{call.method} (actor {call.actor_id}"
                + (f", app {app_id}" if app_id else "")
                + ")"
            )
        remote = _remote_exception(message)
        logs = f" | app log: lab-env logs {app_id} --app" if app_id else ""
        if remote:
            return f"\u274c {where or 'the app'} raised {remote} | {more}{logs}"
        down = _stack_down()
        if down:
            return (
                f"\u274c {where or 'a Dapr call'} failed because {', '.join(down)} "
                f"{'is' if len(down) == 1 else 'are'} not running -> run `lab-env up` in a terminal, "
                f"then re-run this cell | {more}"
            )
        return f"\u274c {where or 'a Dapr call'} failed: {message[:300]} | {more}{logs}"
    if isinstance(err, _connection_error_types()):
        port = _port_in(err) or _port_in_traceback(tb)
        owner = _app_on_port(port) if port else None
        if owner:
            app_id, part = owner
            return (
                f"\u274c the {part} of lab app {app_id} is not answering (port {port}) -> "
                f"re-run the cell that starts it, or call its restart() | {more}"
            )
        down = _stack_down()
        if down:
            return (
                f"\u274c {', '.join(down)} {'is' if len(down) == 1 else 'are'} not running -> "
                f"run `lab-env up` in a terminal, then re-run this cell | {more}"
            )
    return None


def _handler(shell, etype, value, tb, tb_offset=None):
    # %tb prints the whole traceback: it reads the sys.last_* IPython keeps.
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    try:
        line = explain(value, tb)
    except Exception:  # explaining must never hide the error itself
        line = None
    if line is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None
    # IPython leaves showing it to the handler: an error output, as for any failed cell.
    shell._showtraceback(etype, value, [line])
    return None


def install(shell) -> None:
    """Show the errors above in one line in this IPython shell."""
    shell.set_custom_exc(_sdk_error_types() + _connection_error_types(), _handler)
