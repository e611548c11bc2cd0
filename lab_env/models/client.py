"""The model a learner's code talks to, through the official ``openai`` client.

    client, model = model_client(offline.base_url)   # the offline server, unless a real one is configured
    code = code_in(answer)                           # the Python in a model's answer

With OPENAI_API_KEY set in the environment (and OPENAI_BASE_URL for a
server other than OpenAI's; OPENAI_MODEL to pick a model), the real server
is used and the offline one is not needed. The key stays in the client: it
is in no return value, message or repr here.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from lab_env.errors import LabEnvError

if TYPE_CHECKING:
    import openai

DEFAULT_REAL_MODEL = "gpt-4o-mini"
OFFLINE_KEY = "offline-no-key"  # the offline server checks no key; the client insists on one
_FENCED = re.compile(r"```(?:python3?|py)?[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def uses_real_model() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY"))


def model_client(offline_url: str | None = None, timeout: float = 120.0) -> tuple[openai.OpenAI, str]:
    """The client and the model name to ask: a real server when OPENAI_API_KEY is set, else ``offline_url``."""
    import openai

    if uses_real_model():
        base_url = os.environ.get("OPENAI_BASE_URL") or None
        return openai.OpenAI(base_url=base_url, timeout=timeout), os.environ.get("OPENAI_MODEL", DEFAULT_REAL_MODEL)
    if not offline_url:
        raise LabEnvError(
            "no model to ask: OPENAI_API_KEY is not set and no offline server was given",
            "start one with lab_env.models.offline.start() and pass its base_url",
        )
    from lab_env.models.offline_app import MODEL

    return openai.OpenAI(base_url=offline_url, api_key=OFFLINE_KEY, timeout=timeout, max_retries=0), MODEL


def code_in(answer: str) -> str:
    """The Python code in a model's answer: its fenced blocks joined, or the whole answer when it has none."""
    blocks = _FENCED.findall(answer or "")
    return "\n".join(blocks) if blocks else (answer or "")
