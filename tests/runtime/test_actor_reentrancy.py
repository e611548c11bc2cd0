"""Lab 01's reentrancy claim on the real runtime, with the app its notebook writes (haggle_back.py):
a chain that comes back to an actor deadlocks with reentrancy off and completes with it on."""

from __future__ import annotations

import httpx
import pytest

from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.runtime.actors import actor_type, invoke
from lab_env.runtime.apps import start_app, stop_app, unique_name, uvicorn_command
from tests.grading.solution_mutations import written

pytestmark = pytest.mark.stack

# A safety net for the answer that comes (milliseconds); the deadlock is shown by no answer in DEADLOCK_S.
ANSWER_S, DEADLOCK_S = 60.0, 3.0


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory):
    return written(tmp_path_factory.mktemp("haggle"), SOLUTIONS_DIR / "01_actors.ipynb", "haggle_back.py").parent


def _ask(folder, reentrant: bool, timeout: float):
    app = start_app(
        unique_name(f"reent-{int(reentrant)}"), uvicorn_command("haggle_back:app"), cwd=folder,
        components=["statestore"], env={"REENTRANT": "1" if reentrant else "0"},
    )  # fmt: skip
    try:
        return invoke(app, actor_type("Buyer"), "buyer-1", "AskQuote", "seller-1", timeout=timeout)
    finally:
        stop_app(app)


def test_with_reentrancy_the_chain_that_comes_back_completes(app_folder):
    assert _ask(app_folder, True, ANSWER_S) == {"seller": "seller-1", "price": 80}


def test_without_reentrancy_the_chain_that_comes_back_deadlocks(app_folder):
    with pytest.raises(httpx.TimeoutException):
        _ask(app_folder, False, DEADLOCK_S)
