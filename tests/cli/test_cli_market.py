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


def test_hosts_are_one_to_the_most_a_market_runs_on(capsys, monkeypatch):
    started = []
    monkeypatch.setattr(market.control, "up", lambda *a, **k: started.append(a))
    for wrong in ("0", str(market.control.MAX_HOSTS + 1)):
        assert market.cmd_up(_args("--hosts", wrong)) == 2
        assert f"--hosts takes 1 to {market.control.MAX_HOSTS}" in capsys.readouterr().out
    assert not started, "nothing may start on a number of hosts the market refuses"
    assert _args().hosts == 1 and _args("--hosts", "2").hosts == 2
