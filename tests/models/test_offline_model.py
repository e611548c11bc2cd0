"""The offline model server: the official ``openai`` client asks it for
implementations of a course specification and gets the canned candidates,
the same every time. (Each candidate running on a live host, and a
validation suite telling them apart: tests/labs/lab07_capstone.)"""

from __future__ import annotations

import pytest

from lab_env.models import candidates, offline
from lab_env.models.client import code_in, model_client

SPEC = candidates.SPECIFICATIONS["product agent"]


@pytest.fixture(scope="module")
def model():
    server = offline.start()
    try:
        yield server
    finally:
        offline.stop(server)


def test_each_planted_bug_is_an_edit_of_the_correct_candidate():
    correct = [c for c in SPEC.candidates if c.bug is None]
    assert len(correct) == 1 and SPEC.candidates[0].bug is not None, "the correct candidate must not come first"
    sources = {c.source for c in SPEC.candidates}
    assert len(sources) == len(SPEC.candidates), "two candidates are the same code"
    for candidate in SPEC.candidates:
        compile(candidate.source, candidate.name, "exec")
    with pytest.raises(ValueError, match="exactly once"):
        candidates.planted(correct[0].source, [("no such line\n", "")], "broken")


def test_a_spec_is_found_by_its_title_line_only():
    assert candidates.find(SPEC.text) is SPEC
    assert candidates.find("Please write this.\n#   spec: Product Agent  \nmore") is SPEC
    assert candidates.find("An actor per product, type ProductAgent.") is None
    assert candidates.find("# Spec: a wallet") is None


def test_the_official_client_gets_the_candidates_in_order_and_the_same_answer_twice(model, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client, name = model_client(model.base_url)
    assert [m.id for m in client.models.list()] == [name]
    ask = {"model": name, "messages": [{"role": "user", "content": SPEC.text}], "n": 3, "seed": 1}
    answer = client.chat.completions.create(**ask)
    got = [code_in(choice.message.content) for choice in answer.choices]
    assert got == [c.source for c in SPEC.candidates[1:4]]
    assert client.chat.completions.create(**ask).model_dump() == answer.model_dump()
    assert answer.usage.total_tokens > 0


def test_an_unknown_prompt_is_refused_in_openais_error_shape(model, monkeypatch):
    import openai

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client, name = model_client(model.base_url)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "write me a wallet actor"}])
    assert refused.value.code == "unknown_specification"
    assert "# Spec: product agent" in refused.value.message


def test_a_real_key_switches_to_the_real_server_and_stays_out_of_sight(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-" + "q" * 20)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "some-model")
    client, name = model_client(None)
    assert (str(client.base_url), name) == ("http://127.0.0.1:9/v1/", "some-model")
    assert "qqqq" not in repr(client)
    monkeypatch.delenv("OPENAI_API_KEY")
    from lab_env.errors import LabEnvError

    with pytest.raises(LabEnvError, match="no model to ask"):
        model_client(None)


def test_code_in_takes_the_fenced_python_of_an_answer():
    assert code_in("Here it is:\n```python\nx = 1\n```\nDone.") == "x = 1\n"
    assert code_in("```\ny = 2\n```") == "y = 2\n"
    assert code_in("z = 3") == "z = 3"
