"""Lab 06's shared agents on the live stack: the capability directory, and
sellers started together (all of them, or none when one fails)."""

from __future__ import annotations

import pytest

from lab_env import LabEnvError, stop_app, unique_name
from lab_env.marketplace.agents.contractor import read_inbox_of, start_sellers
from lab_env.runtime.actors import actor_type_in, invoke
from lab_env.runtime.apps import running_apps, start_apps, stop_apps
from lab_env.runtime.peers import call
from lab_env.runtime.workflows import start_agents_app

pytestmark = pytest.mark.stack


def test_the_directory_lists_the_latest_card_once_and_forgets_a_withdrawn_agent(tmp_path):
    (tmp_path / "directory_host.py").write_text(
        "from lab_env.marketplace.agents.directory import DirectoryActor\nACTORS = [DirectoryActor]\n"
    )
    app = start_agents_app(unique_name("t-directory"), "directory_host", cwd=tmp_path)
    try:
        directory = actor_type_in(app, "DirectoryActor")
        toys = unique_name("sell-toys")
        assert invoke(app, directory, toys, "Register", {"id": "bolt", "price": 1}) is True
        assert invoke(app, directory, toys, "Register", {"id": "bolt", "price": 1}) is False  # the same card again
        assert invoke(app, directory, toys, "Register", {"id": "bolt", "price": 2}) is True  # a new version
        assert invoke(app, directory, toys, "Register", {"id": "nova", "price": 3}) is True
        assert invoke(app, directory, toys, "Find") == [{"id": "bolt", "price": 2}, {"id": "nova", "price": 3}]
        assert invoke(app, directory, toys, "Withdraw", "bolt") is True
        assert invoke(app, directory, toys, "Withdraw", "bolt") is False
        assert invoke(app, directory, toys, "Find") == [{"id": "nova", "price": 3}]
    finally:
        stop_app(app)


def test_sellers_start_together_answer_by_service_invocation_and_keep_their_inbox():
    sellers = start_sellers({"a": (10.0, 2, "reliable"), "b": (12.0, 1, "refuses")}, prefix="t-")
    caller = start_apps({unique_name("t-caller"): {"components": []}})
    try:
        (buyer,) = caller.values()
        assert call(buyer, sellers["a"].app_id, "cfp", {"task": "t1"}).body == {"price": 10.0, "days": 2}
        assert call(buyer, sellers["b"].app_id, "cfp", {"task": "t1"}).body == {"refuse": True}
        assert [m["kind"] for m in read_inbox_of(sellers["a"])] == ["cfp"]
    finally:
        stop_apps([*sellers.values(), *caller.values()])


def test_start_apps_leaves_nothing_running_when_one_app_fails():
    good, bad = unique_name("t-good"), "Not_An_App_Id"
    with pytest.raises(LabEnvError):
        start_apps({good: {"components": []}, bad: {"components": []}})
    assert good not in running_apps()
