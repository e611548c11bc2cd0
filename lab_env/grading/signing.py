"""The worker's verdicts, HMAC-signed with a key only it and the grader know,
so a results file rewritten by a learner's code is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


def sign(payload: dict[str, Any], key: bytes) -> dict[str, Any]:
    body = json.dumps(payload, sort_keys=True)
    return {"payload": body, "mac": hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}


def verify(signed: dict[str, Any], key: bytes) -> dict[str, Any] | None:
    body = signed.get("payload", "")
    expected = hmac.new(key, str(body).encode(), hashlib.sha256).hexdigest()
    if not isinstance(body, str) or not hmac.compare_digest(expected, str(signed.get("mac", ""))):
        return None
    return json.loads(body)
