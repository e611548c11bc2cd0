"""The grader's side door into a graded kernel: the only lab_env code the
grader asks the kernel to run. It describes values and calls functions, and
answers in JSON. Nothing it returns decides a verdict on its own: the grader
checks every answer against the live stack (see worker.py).
"""

from __future__ import annotations

import inspect
import json
from pathlib import PurePath
from typing import Any


def describe(value: Any) -> str:
    """What the grader needs to know about a check's argument, as JSON."""
    from lab_env.runtime.apps import DaprApp
    from lab_env.runtime.kafka.replicated import Cluster

    if isinstance(value, DaprApp):
        return json.dumps({"kind": "app", "app_id": value.app_id})
    if isinstance(value, Cluster):
        return json.dumps({"kind": "kafka_cluster", "name": value.name})
    if isinstance(value, PurePath):
        return json.dumps({"kind": "path", "path": str(value)})
    if callable(value):
        return json.dumps({"kind": "function"})
    try:
        return json.dumps({"kind": "json", "value": value})
    except (TypeError, ValueError):
        return json.dumps({"kind": "unsupported", "type": type(value).__name__})


async def call(fn: Any, arguments: str) -> str:
    """Call ``fn(*args)`` (awaiting it if it is async); its result as JSON."""
    result = fn(*json.loads(arguments))
    if inspect.isawaitable(result):
        result = await result
    return json.dumps(result, default=str)
