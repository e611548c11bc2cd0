"""`lab-env market up`'s arguments, refused before anything starts (no stack)."""

from __future__ import annotations

import argparse

from lab_env.cli import market


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    market.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["market", "up", *argv])


def test_unreliable_sellers_are_numbers_of_the_markets_own_sellers(capsys, monkeypatch):
    started = []
    monkeypatch.setattr(market.control, "up", lambda *a, **k: started.append(a))
    assert market.cmd_up(_args("--sellers", "3", "--unreliable", "3")) == 2
    assert "from 0 to 2" in capsys.readouterr().out
    assert not started, "nothing may start for a seller the market does not have"
    assert _args("--unreliable", "0", "2").unreliable == [0, 2]
    assert _args().unreliable == []
