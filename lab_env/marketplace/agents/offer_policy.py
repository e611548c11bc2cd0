"""How a buyer or seller agent picks its next offer in a negotiation (the
capstone): by a rule, offline and deterministic, or by a language model
through the official ``openai`` client and any OpenAI-compatible server.

    policy = choose_policy(api_key, base_url)     # no key: the rule
    offer = policy.offer(situation)               # a float, or OfferRejected

A model's answer is untrusted input. It must be a JSON object with a numeric
``offer`` inside the agent's own limits and never a step back from its last
offer; anything else raises OfferRejected with the reason, and nothing is
applied. Call ``offer`` only inside a workflow activity: the activity's
result is recorded, so a replay never asks the model twice.

The key is only ever held by the client: it is not in this module's reprs or
errors (a server's error text can echo a key back, so it is dropped).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Literal, Protocol

DEFAULT_MODEL = "gpt-4o-mini"
Role = Literal["buyer", "seller"]


class OfferRejected(ValueError):
    """The proposed offer was not applied; ``str()`` says why, in one line."""


@dataclass(frozen=True)
class Situation:
    """What an agent knows when it makes an offer. ``limit`` is private: the
    most a buyer will pay, the least a seller will take."""

    role: Role
    item: str
    round: int  # 0-based
    rounds: int
    opening: float
    limit: float
    history: tuple[dict, ...] = field(default_factory=tuple)  # earlier rounds: {"round", "bid", "ask"}

    def __post_init__(self) -> None:
        if self.role not in ("buyer", "seller"):
            raise ValueError(f"role must be buyer or seller, got {self.role!r}")
        if (self.role == "buyer" and self.opening > self.limit) or (
            self.role == "seller" and self.opening < self.limit
        ):
            raise ValueError(
                f"a {self.role} opens on the far side of its limit: opening {self.opening}, limit {self.limit}"
            )
        if not 0 <= self.round < self.rounds:
            raise ValueError(f"round {self.round} is outside 0..{self.rounds - 1}")

    def own_offers(self) -> list[float]:
        key = "bid" if self.role == "buyer" else "ask"
        return [float(r[key]) for r in self.history if r.get(key) is not None]


class OfferPolicy(Protocol):
    name: str

    def offer(self, situation: Situation) -> float: ...


class RulePolicy:
    """Concede in equal steps from the opening to the limit, reached in the last round."""

    name = "rule"

    def offer(self, situation: Situation) -> float:
        if situation.rounds == 1:
            return round(situation.limit, 2)
        share = situation.round / (situation.rounds - 1)
        return round(situation.opening + (situation.limit - situation.opening) * share, 2)


def validate(situation: Situation, answer: str) -> float:
    """The offer in a model's ``answer``, or OfferRejected naming what is wrong."""
    try:
        data = json.loads(answer)
    except (TypeError, ValueError):
        raise OfferRejected(f"the model's answer is not JSON: {str(answer)[:60]!r}") from None
    if not isinstance(data, dict) or "offer" not in data:
        raise OfferRejected('the model\'s answer has no "offer": expected {"offer": <number>, "reason": "..."}')
    return check_offer(situation, data["offer"], "the model")


def check_offer(situation: Situation, offer: object, who: str) -> float:
    """``offer`` if it is a number within the agent's bounds, else OfferRejected naming what is wrong."""
    if isinstance(offer, bool) or not isinstance(offer, (int, float)) or not math.isfinite(offer):
        raise OfferRejected(f"{who}'s offer is not a number: {offer!r}")
    low, high = sorted((situation.opening, situation.limit))
    if not low <= offer <= high:
        side = (
            "above the buyer's limit"
            if situation.role == "buyer" and offer > high
            else "below the seller's limit"
            if situation.role == "seller" and offer < low
            else "behind its opening offer"
        )
        raise OfferRejected(f"{who} offered {offer}, {side} (allowed {low} to {high})")
    previous = situation.own_offers()
    if previous:
        last = previous[-1]
        if (situation.role == "buyer" and offer < last) or (situation.role == "seller" and offer > last):
            raise OfferRejected(f"{who} offered {offer}, a step back from the {situation.role}'s last offer {last}")
    return round(float(offer), 2)


def load_file(path: str):
    """A learner's Python file (an ``%%app_file``), loaded as a module of its own; its errors are raised."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"learner_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise OfferRejected(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FilePolicy:
    """A learner's own negotiator: class ``Negotiator`` in a Python file, with
    ``offer(situation) -> float``. Its offers pass the same checks as a model's,
    and anything it raises is a rejection with the error named (the rule
    decides that round), so a bug never stops an order."""

    name = "yours"

    def __init__(self, path: str) -> None:
        self._negotiator = load_file(path).Negotiator()

    def offer(self, situation: Situation) -> float:
        try:
            offer = self._negotiator.offer(situation)
        except Exception as err:  # the learner's code: any bug is a rejected offer, named
            first = (str(err).splitlines() or [""])[0][:120]
            raise OfferRejected(f"your policy raised {type(err).__name__}: {first}") from None
        return check_offer(situation, offer, "your policy")


INSTRUCTIONS = (
    "You negotiate a price for one item on behalf of a {role}. Answer with one JSON object only: "
    '{{"offer": <number>, "reason": "<a few words>"}}. Your offer must lie between your opening offer and your '
    "limit, and must not go back on your previous offer. Move toward an agreement as the rounds run out."
)


class ModelPolicy:
    """Offers from a chat model. Never retries on its own (the workflow's retry
    policy decides), and never lets the key or a server's error text out."""

    name = "model"

    def __init__(
        self, api_key: str, base_url: str | None = None, model: str | None = None, timeout: float = 60.0
    ) -> None:
        import openai

        self.model = model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0)

    def __repr__(self) -> str:
        return f"ModelPolicy(model={self.model!r})"

    def offer(self, situation: Situation) -> float:
        import openai

        facts = {
            "item": situation.item,
            "round": situation.round + 1,
            "of_rounds": situation.rounds,
            "opening_offer": situation.opening,
            "limit": situation.limit,
            "earlier_rounds": list(situation.history),
        }
        try:
            reply = self._client.chat.completions.create(
                model=self.model,
                temperature=0,
                response_format={"type": "json_object"},
                messages=[
                    {"role": "system", "content": INSTRUCTIONS.format(role=situation.role)},
                    {"role": "user", "content": json.dumps(facts)},
                ],
            )
        except openai.APIStatusError as err:  # the body may quote the key: keep only the status
            raise OfferRejected(f"the model server refused the request: HTTP {err.status_code}") from None
        except openai.APIError as err:
            raise OfferRejected(f"the model server could not be reached ({type(err).__name__})") from None
        choices = reply.choices or []
        if not choices or choices[0].message.content is None:
            raise OfferRejected("the model gave no answer")
        return validate(situation, choices[0].message.content)


def choose_policy(api_key: str | None, base_url: str | None = None, model: str | None = None) -> OfferPolicy:
    """The model when there is a key, else the rule: the marketplace runs fully offline without one."""
    return ModelPolicy(api_key, base_url, model) if api_key else RulePolicy()
