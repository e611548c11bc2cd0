"""The contract net: a manager announces a task (a call for proposals),
contractors propose or refuse, the manager awards the task to the best
proposal and rejects the others, and the winner reports done or failed.
A failure, or a winner that never reports, leads to a re-award to the next
best proposal still standing.

The rule: the lowest price wins; on equal prices the earliest delivery; on
both equal the proposal received first. Exactly one award is open at a time.
A proposal binds its contractor until the task is done, so a contractor
rejected at first may still get the task when the winner fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    ANNOUNCED = "announced"
    AWARDED = "awarded"
    DONE = "done"
    UNASSIGNED = "unassigned"  # nobody proposed, or every awardee failed


@dataclass(frozen=True)
class Proposal:
    contractor: str
    price: float
    days: int
    seq: int  # arrival order


def rank(proposals: list[Proposal]) -> list[Proposal]:
    return sorted(proposals, key=lambda p: (p.price, p.days, p.seq))


@dataclass
class Task:
    task_id: str
    proposals: dict[str, Proposal] = field(default_factory=dict)  # contractor -> proposal
    refused: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)  # contractors whose award failed, in order
    phase: Phase = Phase.ANNOUNCED
    awardee: str | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)  # (contractor, "award" | "reject") sent

    def propose(self, contractor: str, price: float, days: int) -> bool:
        """A proposal before the award; a contractor's second proposal is ignored."""
        if self.phase != Phase.ANNOUNCED or contractor in self.proposals or contractor in self.refused:
            return False
        self.proposals[contractor] = Proposal(contractor, price, days, len(self.proposals))
        return True

    def refuse(self, contractor: str) -> None:
        if self.phase == Phase.ANNOUNCED and contractor not in self.proposals:
            self.refused.add(contractor)

    def award(self) -> str | None:
        """The deadline for proposals passed: award the best, reject the rest."""
        if self.phase != Phase.ANNOUNCED:
            return self.awardee
        return self._award_next(first=True)

    def _award_next(self, first: bool) -> str | None:
        standing = [p for p in rank(list(self.proposals.values())) if p.contractor not in self.failed]
        if not standing:
            self.phase, self.awardee = Phase.UNASSIGNED, None
            return None
        self.phase, self.awardee = Phase.AWARDED, standing[0].contractor
        self.messages.append((self.awardee, "award"))
        if first:
            self.messages += [(p.contractor, "reject") for p in standing[1:]]
        return self.awardee

    def report(self, contractor: str, ok: bool) -> str | None:
        """The awardee reports; a failure re-awards. Returns who holds the task now."""
        if self.phase != Phase.AWARDED or contractor != self.awardee:
            return self.awardee
        if ok:
            self.phase = Phase.DONE
            return contractor
        self.failed.append(contractor)
        return self._award_next(first=False)

    def timed_out(self) -> str | None:
        """The awardee missed its deadline: treated as a failure."""
        if self.phase == Phase.AWARDED and self.awardee:
            return self.report(self.awardee, ok=False)
        return self.awardee
