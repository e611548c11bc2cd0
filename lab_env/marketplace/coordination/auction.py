"""Auctions: sealed-bid (first price, or second price: Vickrey) and ascending
(English). Bids carry an id, so a resubmitted bid changes nothing; ties go
to the earliest bid received, a rule every bidder can know in advance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bid:
    bid_id: str
    bidder: str
    amount: float
    seq: int  # order of arrival at the auctioneer; breaks ties


@dataclass(frozen=True)
class Outcome:
    winner: str | None
    price: float | None
    bids: int  # distinct bids considered


@dataclass
class SealedBid:
    """Bids are secret until the close; ``second_price`` makes it a Vickrey auction."""

    item: str
    reserve: float = 0.0
    second_price: bool = False
    bids: dict[str, Bid] = field(default_factory=dict)  # bid id -> bid
    closed: bool = False

    def submit(self, bid_id: str, bidder: str, amount: float) -> bool:
        """Accept a bid; a bid id seen before (a retry) is ignored. False if not accepted."""
        if self.closed or bid_id in self.bids or amount < 0:
            return False
        # One bid per bidder: a new bid id from the same bidder replaces its earlier bid.
        for old_id, old in list(self.bids.items()):
            if old.bidder == bidder:
                del self.bids[old_id]
        self.bids[bid_id] = Bid(bid_id, bidder, amount, seq=self._next_seq())
        return True

    def _next_seq(self) -> int:
        return max((b.seq for b in self.bids.values()), default=-1) + 1

    def close(self, price: Callable[[list[Bid], float], float] | None = None) -> Outcome:
        """The winner and its price. ``price`` computes a Vickrey auction's price from the bids
        (highest first, ties earliest first; the first at or above the reserve) and the reserve;
        ``second_price_of`` by default (lab 06 has the learner write it)."""
        self.closed = True
        ranked = sorted(self.bids.values(), key=lambda b: (-b.amount, b.seq))
        if not ranked or ranked[0].amount < self.reserve:
            return Outcome(None, None, len(ranked))
        best = ranked[0]
        if self.second_price:
            return Outcome(best.bidder, (price or second_price_of)(ranked, self.reserve), len(ranked))
        return Outcome(best.bidder, best.amount, len(ranked))


def second_price_of(ranked: list[Bid], reserve: float) -> float:
    """What a Vickrey auction's winner pays: the next highest bid, never less than the reserve.
    (A lone bidder pays the reserve: the reserve is the bid it had to beat.)"""
    runner_up = ranked[1].amount if len(ranked) > 1 else reserve
    return max(runner_up, reserve)


@dataclass
class Ascending:
    """English auction: each bid must beat the standing one by ``increment``."""

    item: str
    opening: float
    increment: float = 1.0
    leader: Bid | None = None
    seen: set[str] = field(default_factory=set)
    closed: bool = False
    _seq: int = 0

    def minimum(self) -> float:
        return self.opening if self.leader is None else self.leader.amount + self.increment

    def submit(self, bid_id: str, bidder: str, amount: float) -> bool:
        if self.closed or bid_id in self.seen:
            return False
        self.seen.add(bid_id)
        if amount < self.minimum():
            return False
        self.leader = Bid(bid_id, bidder, amount, self._seq)
        self._seq += 1
        return True

    def close(self) -> Outcome:
        self.closed = True
        if self.leader is None:
            return Outcome(None, None, len(self.seen))
        return Outcome(self.leader.bidder, self.leader.amount, len(self.seen))


def dump(auction: SealedBid | Ascending) -> dict:
    """The auction as JSON-able data (what an actor keeps in its state)."""
    if isinstance(auction, SealedBid):
        return {
            "kind": "vickrey" if auction.second_price else "sealed",
            "item": auction.item,
            "reserve": auction.reserve,
            "closed": auction.closed,
            "bids": [vars(b) for b in auction.bids.values()],
        }
    return {
        "kind": "english",
        "item": auction.item,
        "opening": auction.opening,
        "increment": auction.increment,
        "closed": auction.closed,
        "seen": sorted(auction.seen),
        "seq": auction._seq,
        "leader": vars(auction.leader) if auction.leader else None,
    }


def restore(data: dict) -> SealedBid | Ascending:
    if data["kind"] in ("sealed", "vickrey"):
        return SealedBid(
            data["item"],
            data["reserve"],
            data["kind"] == "vickrey",
            {b["bid_id"]: Bid(**b) for b in data["bids"]},
            data["closed"],
        )
    return Ascending(
        data["item"],
        data["opening"],
        data["increment"],
        Bid(**data["leader"]) if data["leader"] else None,
        set(data["seen"]),
        data["closed"],
        data["seq"],
    )


def new(
    kind: str, item: str, reserve: float = 0.0, opening: float = 0.0, increment: float = 1.0
) -> SealedBid | Ascending:
    if kind == "sealed":
        return SealedBid(item, reserve)
    if kind == "vickrey":
        return SealedBid(item, reserve, second_price=True)
    if kind == "english":
        return Ascending(item, opening, increment)
    raise ValueError(f"unknown auction kind {kind!r}: sealed, vickrey or english")
