"""The capstone's offer policies: the offline rule, and a model reached with
the official openai client through a local OpenAI-compatible test server
(the model is not part of the stack, so a scripted one stands in for it).
A bad answer (not JSON, no offer, outside the limits, a step back, a server
error) is rejected with its reason, and the key never shows."""

from __future__ import annotations

import json
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lab_env.core.ports import free_ports
from lab_env.marketplace.agents.offer_policy import (
    FilePolicy,
    ModelPolicy,
    OfferRejected,
    RulePolicy,
    Situation,
    choose_policy,
    validate,
)

KEY = "sk-test-" + "q" * 24  # what a leak would look like


def _buyer(round_no: int = 0, history: tuple = ()) -> Situation:
    return Situation("buyer", "lamp", round_no, 5, opening=100.0, limit=180.0, history=history)


def _seller(round_no: int = 0) -> Situation:
    return Situation("seller", "lamp", round_no, 5, opening=240.0, limit=150.0)


def test_the_rule_concedes_in_equal_steps_and_reaches_the_limit_in_the_last_round():
    rule = RulePolicy()
    assert [rule.offer(_buyer(r)) for r in range(5)] == [100.0, 120.0, 140.0, 160.0, 180.0]
    assert [rule.offer(_seller(r)) for r in range(5)] == [240.0, 217.5, 195.0, 172.5, 150.0]


def test_a_situation_on_the_wrong_side_of_its_limit_is_refused():
    with pytest.raises(ValueError, match="far side of its limit"):
        Situation("buyer", "lamp", 0, 3, opening=200.0, limit=100.0)


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("sure, 150", "not JSON"),
        ('{"price": 150}', 'no "offer"'),
        ('{"offer": "150"}', "not a number"),
        ('{"offer": NaN}', "not a number"),
        ('{"offer": 250}', "above the buyer's limit"),
        ('{"offer": 50}', "behind its opening offer"),
        ('{"offer": 110}', "a step back from the buyer's last offer 120.0"),
    ],
)
def test_validate_rejects_a_bad_answer_with_its_reason(answer, reason):
    situation = _buyer(2, history=({"round": 0, "bid": 100.0, "ask": 240.0}, {"round": 1, "bid": 120.0, "ask": 220.0}))
    with pytest.raises(OfferRejected, match=reason):
        validate(situation, answer)
    assert validate(situation, '{"offer": 130.456, "reason": "closer"}') == 130.46


def test_validate_holds_a_seller_to_its_floor():
    with pytest.raises(OfferRejected, match="below the seller's limit"):
        validate(_seller(), '{"offer": 149.99}')


class ScriptedModel:
    """An OpenAI-compatible chat completions endpoint answering from a script."""

    def __init__(self, respond=None) -> None:
        self.answers: list[object] = []  # in order of the requests; or respond(body) -> answer
        self.respond = respond
        self.requests: list[dict] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request):
            body = await request.json()
            self.requests.append({"auth": request.headers.get("authorization"), "body": body})
            answer = self.respond(body) if self.respond else self.answers.pop(0)
            if isinstance(answer, int):  # an HTTP error that quotes the key back, as some servers do
                return JSONResponse({"error": {"message": f"Incorrect API key provided: {KEY}"}}, status_code=answer)
            return {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            }

        (self.port,) = free_ports(1)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ScriptedModel:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the scripted model server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def test_the_model_decides_through_the_openai_client_and_bad_answers_are_never_applied():
    with ScriptedModel() as model:
        policy = choose_policy(KEY, model.base_url, model="test-model")
        assert isinstance(policy, ModelPolicy)
        model.answers += ['{"offer": 125, "reason": "open low"}', "I'd pay 300!", '{"offer": 999}', 401]
        assert policy.offer(_buyer(1)) == 125.0
        sent = model.requests[0]
        assert sent["auth"] == f"Bearer {KEY}" and sent["body"]["model"] == "test-model"
        assert json.loads(sent["body"]["messages"][1]["content"])["limit"] == 180.0
        assert sent["body"]["response_format"] == {"type": "json_object"}
        with pytest.raises(OfferRejected, match="not JSON") as not_json:
            policy.offer(_buyer(1))
        with pytest.raises(OfferRejected, match="above the buyer's limit") as too_high:
            policy.offer(_buyer(1))
        with pytest.raises(OfferRejected, match="HTTP 401") as refused:
            policy.offer(_buyer(1))
    for shown in (repr(policy), str(not_json.value), str(too_high.value), str(refused.value)):
        assert KEY not in shown and "qqqq" not in shown, shown


def test_without_a_key_the_rule_decides_offline():
    policy = choose_policy(None)
    assert isinstance(policy, RulePolicy) and policy.offer(_buyer(4)) == 180.0
    with pytest.raises(OfferRejected, match="could not be reached"):
        ModelPolicy(KEY, base_url=f"http://127.0.0.1:{free_ports(1)[0]}/v1", timeout=5).offer(_buyer())


# -- a learner's own negotiator, from a file ------------------------------------------


def _negotiator(tmp_path, body: str) -> FilePolicy:
    path = tmp_path / "my_offers.py"
    path.write_text(
        "class Negotiator:\n    def offer(self, s):\n" + "".join(f"        {line}\n" for line in body.splitlines())
    )
    return FilePolicy(str(path))


def test_a_learners_negotiator_decides_within_its_bounds(tmp_path):
    mine = _negotiator(tmp_path, "return s.opening + (s.limit - s.opening) * (s.round + 1) / s.rounds")
    assert mine.name == "yours"
    assert mine.offer(_buyer(0)) == 116.0
    assert mine.offer(_buyer(4, history=({"round": 3, "bid": 164.0, "ask": 200},))) == 180.0


@pytest.mark.parametrize(
    "body, reason",
    [
        (
            "raise NotImplementedError('write your negotiator')",
            "your policy raised NotImplementedError: write your negotiator",
        ),
        ("return s.limit + 1", "your policy offered 181.0, above the buyer's limit (allowed 100.0 to 180.0)"),
        ("return 'cheap'", "your policy's offer is not a number: 'cheap'"),
        ("return s.opening", "your policy offered 100.0, a step back from the buyer's last offer 150.0"),
    ],
)
def test_a_learners_wrong_offer_is_rejected_with_its_reason(tmp_path, body, reason):
    with pytest.raises(OfferRejected) as err:
        _negotiator(tmp_path, body).offer(_buyer(1, history=({"round": 0, "bid": 150.0, "ask": 200},)))
    assert str(err.value) == reason
