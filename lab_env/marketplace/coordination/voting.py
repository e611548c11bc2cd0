"""Voting with a quorum: a decision needs ⌊N/2⌋ + 1 agreeing votes of N voters.

A voter may vote again (a retried message, a changed mind): only its latest
vote counts, so duplicates never add up. Votes from agents outside the
electorate are ignored. Once the deadline passes without a quorum, the
outcome is "no decision": never a decision by default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

NO_DECISION = "no decision"


def quorum(voters: int) -> int:
    """Smallest strict majority of ``voters``."""
    if voters < 1:
        raise ValueError("a vote needs at least one voter")
    return voters // 2 + 1


@dataclass
class Ballot:
    question: str
    electorate: frozenset[str]
    votes: dict[str, str] = field(default_factory=dict)  # voter -> latest choice
    closed: bool = False
    quorum_of: Callable[[int], int] = field(default=quorum, repr=False, compare=False)  # lab 06 has one written

    def cast(self, voter: str, choice: str) -> bool:
        """Record ``voter``'s choice; False when it does not count (a stranger, or the ballot is closed)."""
        if self.closed or voter not in self.electorate:
            return False
        self.votes[voter] = choice
        return True

    def tally(self) -> Counter[str]:
        return Counter(self.votes.values())

    def decision(self) -> str | None:
        """The choice with a quorum, or None while there is none yet."""
        needed = self.quorum_of(len(self.electorate))
        for choice, count in self.tally().most_common():
            if count >= needed:
                return choice
        return None

    def close(self) -> str:
        """The deadline passed: the decision, or NO_DECISION without a quorum."""
        self.closed = True
        return self.decision() or NO_DECISION
