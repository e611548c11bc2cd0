"""Names that do not collide: a run token fixed per Python process, and names carrying it.

Two learners, two graders or a re-run of a lab share one stack; every app id, actor type
and topic a run makes ends in its token, so runs never share state and a run's leftovers
can be found and stopped by that token.
"""

from __future__ import annotations

import os
import secrets

_RUN_TOKEN = secrets.token_hex(3)


def run_token() -> str:
    """A short token fixed for this Python process (or inherited, in an app: LAB_RUN_TOKEN)."""
    return os.environ.get("LAB_RUN_TOKEN", _RUN_TOKEN)


def unique_name(prefix: str) -> str:
    """``prefix`` plus this run's token: for app ids, actor types and topics.

    Apps started with dapr_app inherit the token, so they compute the same names.
    """
    return f"{prefix}-{run_token()}"
