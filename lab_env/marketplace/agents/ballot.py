"""A ballot as a Dapr actor (lab 06): agents vote on a dispute, say a refund.

Open names the electorate and the deadline, kept as a reminder; Vote counts
a voter's latest choice once; the decision needs a quorum (⌊N/2⌋ + 1), and
the reminder closes the ballot with "no decision" when none was reached.
The rules are lab_env.marketplace.coordination.voting's.

    uvicorn lab_env.marketplace.agents.ballot:app --port ...
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import timedelta

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from lab_env.marketplace.coordination.voting import Ballot, quorum
from lab_env.runtime.actors import for_this_run, reuse_sidecar_connections

CLOSE = "close"


class BallotInterface(ActorInterface):
    @actormethod(name="Open")
    async def open(self, terms: dict) -> dict: ...

    @actormethod(name="Vote")
    async def vote(self, vote: dict) -> bool: ...

    @actormethod(name="Result")
    async def result(self) -> dict: ...


class BallotActor(Actor, BallotInterface, Remindable):
    """terms: question, electorate (agent ids), seconds to the deadline."""

    async def _ballot(self) -> Ballot | None:
        _, saved = await self._state_manager.try_get_state("ballot")
        if not saved:
            return None
        electorate = frozenset(saved["electorate"])
        return Ballot(saved["question"], electorate, dict(saved["votes"]), saved["closed"], self.quorum)

    def quorum(self, voters: int) -> int:
        """How many agreeing votes of ``voters`` decide (see voting.quorum)."""
        return quorum(voters)

    async def _keep(self, ballot: Ballot, outcome: str | None = None) -> None:
        await self._state_manager.set_state(
            "ballot",
            {
                "question": ballot.question,
                "electorate": sorted(ballot.electorate),
                "votes": ballot.votes,
                "closed": ballot.closed,
            },
        )
        if outcome is not None:
            await self._state_manager.set_state("outcome", outcome)
        await self._state_manager.save_state()

    async def open(self, terms: dict) -> dict:
        if await self._ballot() is not None:  # a retried Open changes nothing
            return {"opened": False}
        await self._keep(Ballot(terms["question"], frozenset(terms["electorate"])))
        await self.register_reminder(CLOSE, b"", timedelta(seconds=float(terms["seconds"])), timedelta(0))
        return {"opened": True}

    async def vote(self, vote: dict) -> bool:
        ballot = await self._ballot()
        if ballot is None:
            raise ValueError(f"ballot {self.id.id} is not open")
        counted = ballot.cast(str(vote["voter"]), str(vote["choice"]))
        if counted:
            await self._keep(ballot)
        return counted

    async def result(self) -> dict:
        ballot = await self._ballot()
        _, outcome = await self._state_manager.try_get_state("outcome")
        if ballot is None:
            return {"open": False, "decision": None, "tally": {}}
        return {
            "open": not ballot.closed,
            "decision": outcome if ballot.closed else ballot.decision(),
            "tally": dict(ballot.tally()),
            "quorum": self.quorum(len(ballot.electorate)),
        }

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        if name != CLOSE:
            return
        ballot = await self._ballot()
        if ballot is not None and not ballot.closed:
            outcome = ballot.close()
            await self._keep(ballot, outcome)
        await self.unregister_reminder(CLOSE)


@asynccontextmanager
async def lifespan(app: FastAPI):
    reuse_sidecar_connections()
    await actors.register_actor(for_this_run(BallotActor))
    yield


app = FastAPI(title="ballot", lifespan=lifespan)
actors = DaprActor(app)


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}
