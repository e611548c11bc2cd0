"""Session set-up shared by tests/ and the nbval runs of solutions/.

The live stack is started once if any collected test needs it (marker
`stack`, or any notebook cell), and stopped at the end if this session
started it. Set LAB_ENV_KEEP_STACK=1 to leave it running.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Checks the suite runs (nbval kernels inherit this) never write a learner's
# progress record (lab_env.course).
os.environ["LAB_ENV_PROGRESS"] = str(Path(tempfile.mkdtemp(prefix="lab-env-progress-")) / "progress.json")


def _needs_stack(item: pytest.Item) -> bool:
    return item.get_closest_marker("stack") is not None or item.nodeid.split("::")[0].endswith(".ipynb")


@pytest.fixture(scope="session", autouse=True)
def lab_stack(request: pytest.FixtureRequest):
    if not any(_needs_stack(item) for item in request.session.items):
        yield None
        return
    from lab_env.stack import down, status, up

    started = [] if all(s.ready for s in status()) else up(progress=False)
    topics = _topics()
    yield started
    _delete_topics_made_since(topics)
    if started and not os.environ.get("LAB_ENV_KEEP_STACK"):
        down()


def _topics() -> set[str]:
    from lab_env import kafka

    return set(kafka.topic_partitions_all())


def _delete_topics_made_since(before: set[str]) -> None:
    """The session's topics go: each run makes hundreds of partitions, and a broker
    that kept thousands took minutes to start."""
    from lab_env import kafka

    try:
        kafka.delete_topics(sorted(t for t in _topics() - before if not t.startswith("__")))
    except Exception as err:  # the stack may be down by now: leaving topics is no test failure
        print(f"\nconftest: could not delete this session's Kafka topics: {err}")
