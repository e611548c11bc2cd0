"""An offline OpenAI-compatible model server: a stand-in for a hosted model.

What it reproduces: the two endpoints the official ``openai`` client uses
here, as that client calls them: ``POST /v1/chat/completions`` (bearer
authentication, ``messages``, ``n`` choices, ``seed``, a ``usage`` count) and
``GET /v1/models``; errors in OpenAI's shape (``{"error": {"message", "type",
"code"}}``), 401 without a key and 400 for a request it cannot serve.

What it does not: it neither reads nor reasons. It finds the course
specification named by the title line (``# Spec: <name>``) in the last user
message and answers with that specification's canned candidates
(lab_env.models.candidates), the i-th choice being candidate ``seed + i``.
The same request always gets the same answer. Any other prompt gets a 400
that names the specifications it knows. It checks no key: any is accepted.
It does not stream (``stream`` is refused), echoes the model name it is
given, and its ``usage`` counts words, not tokens.

    python -m uvicorn lab_env.models.offline_app:app --port ...   (lab_env.models.offline.start does it)
"""

from __future__ import annotations

import hashlib
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lab_env.models.candidates import SPECIFICATIONS, find

MODEL = "lab-env-offline"

app = FastAPI(title="lab-env offline model (a stand-in for an OpenAI-compatible server)")


def _error(status: int, message: str, kind: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def _text(content: object) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.get("/v1/models")
async def models() -> dict:
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "lab-env"}]}


@app.post("/v1/chat/completions")
async def completions(request: Request):
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return _error(
            401, "no API key sent: send any (this offline server checks none)", "invalid_request_error", "no_key"
        )
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the request body is not JSON", "invalid_request_error", "bad_json")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(
            400, "the request needs a JSON object with a list of messages", "invalid_request_error", "bad_body"
        )
    if body.get("stream"):
        return _error(
            400, "this offline server does not stream: leave stream out", "invalid_request_error", "no_stream"
        )
    n, seed = body.get("n", 1), body.get("seed", 0)
    if not isinstance(n, int) or not isinstance(seed, int) or not 1 <= n <= 8:
        return _error(
            400,
            f"n must be an integer from 1 to 8 and seed an integer, got {n!r} and {seed!r}",
            "invalid_request_error",
            "bad_n",
        )
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    spec = find(_text(users[-1].get("content"))) if users else None
    if spec is None:
        known = ", ".join(f"'# Spec: {name}'" for name in SPECIFICATIONS)
        return _error(
            400,
            f"the offline model knows the course's specifications only: begin one with its title line ({known}), "
            "or set OPENAI_API_KEY and OPENAI_BASE_URL for a real model",
            "invalid_request_error",
            "unknown_specification",
        )
    picked = [spec.candidates[(seed + i) % len(spec.candidates)] for i in range(n)]
    choices = [
        {
            "index": i,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": f"```python\n{c.source}```\n"},
        }
        for i, c in enumerate(picked)
    ]
    prompt_words = sum(len(_text(m.get("content")).split()) for m in body["messages"] if isinstance(m, dict))
    answer_words = sum(len(c.source.split()) for c in picked)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-offline-{digest}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model") or MODEL,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": answer_words,
            "total_tokens": prompt_words + answer_words,
        },
    }
