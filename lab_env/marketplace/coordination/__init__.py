"""Coordination protocols between the marketplace's agents (lab 06), as pure
logic: no I/O, no clock, no randomness, so the same rules run inside actors
and deterministic workflows, and are unit-tested on their own.

    contract_net   call for proposals, award by a stated rule, re-award on failure
    auction        sealed-bid (first and second price) and ascending auctions
    voting         decisions by quorum, one vote per voter
"""
