"""The offline model server and the specification-driven loop it serves:
the official ``openai`` client asks it for implementations of a course
specification, each candidate runs as a real actor host behind a real
sidecar, and a validation suite run against it accepts the correct one and
finds each planted bug."""

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


# -- the loop against the live stack ----------------------------------------------------------


def _problems(host) -> list[str]:
    """A validation suite for the product agent's specification, run against a live host: what it breaks.
    Each property is probed on a product of its own and by differences, so one bug does not hide another."""
    from lab_env.runtime.actors import actor_type_in, invoke

    kind = actor_type_in(host, SPEC.actor)

    def call(product: str, method: str, body=None):
        return invoke(host, kind, product, method, body)

    found = []
    call("lamp", "Restock", 5)
    if call("desk", "Stock") != 0:
        found.append("products share stock")
    before = call("chair", "Restock", 5)
    call("chair", "Reserve", {"order_id": "o-1", "quantity": 2})
    call("chair", "Reserve", {"order_id": "o-1", "quantity": 2})  # a retry
    if before - call("chair", "Stock") != 2:
        found.append("a retried Reserve held twice")
    stock = call("sofa", "Restock", 1)
    if call("sofa", "Reserve", {"order_id": "o-2", "quantity": stock + 1}).get("ok") or call("sofa", "Stock") != stock:
        found.append("Reserve took more than the stock")
    before = call("bed", "Restock", 5)
    call("bed", "Reserve", {"order_id": "o-3", "quantity": 2})
    call("bed", "Release", "o-3")
    if call("bed", "Stock") != before:
        found.append("Release did not give the stock back")
    kept = call("lamp", "Stock")
    host.crash()
    host.restart()
    if call("lamp", "Stock") != kept:
        found.append("a restarted host lost the state")
    return found


EXPECTED = {
    "correct": [],
    "double-reserve": ["a retried Reserve held twice"],
    "unsaved": ["a restarted host lost the state"],
    "oversell": ["Reserve took more than the stock"],
    "shared": ["products share stock", "a restarted host lost the state"],  # its state is in no store either
    "no-compensation": ["Release did not give the stock back"],
}


@pytest.mark.stack
def test_the_validation_suite_accepts_the_correct_candidate_and_finds_each_planted_bug(model, tmp_path, monkeypatch):
    from lab_env.runtime.apps import start_app, stop_app, unique_name, uvicorn_command

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client, name = model_client(model.base_url)
    answer = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": SPEC.text}], n=len(SPEC.candidates)
    )
    found = {}
    for i, (choice, candidate) in enumerate(zip(answer.choices, SPEC.candidates, strict=True)):
        (tmp_path / f"candidate_{i}.py").write_text(code_in(choice.message.content))
        host = start_app(
            unique_name(f"candidate-{i}"),
            uvicorn_command(f"candidate_{i}:app"),
            cwd=tmp_path,
            components=["statestore"],
        )
        try:
            found[candidate.name] = _problems(host)
        finally:
            stop_app(host)
    assert found == EXPECTED
