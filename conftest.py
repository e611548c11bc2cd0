"""Session set-up shared by tests/ and the nbval runs of solutions/.

The live stack is started once if any collected test needs it (marker
`stack`, or any notebook cell), and stopped at the end if this session
started it. Set LAB_ENV_KEEP_STACK=1 to leave it running.

Under pytest-xdist (`-n 2`, as `make test` runs) the workers share that one
stack: the first to need it starts it, and the controller stops it when all
are done. Each file runs on one worker (a notebook's cells share a kernel); tests
marked `serial` (they stop, restart or load the shared stack) refuse to run
on a worker, and `make test` runs them alone after the others.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

import pytest

# Checks the suite runs (nbval kernels inherit this) never write a learner's
# progress record (lab_env.labs.course).
os.environ["LAB_ENV_PROGRESS_FILE"] = str(Path(tempfile.mkdtemp(prefix="lab-env-progress-")) / "progress.json")


def _needs_stack(item: pytest.Item) -> bool:
    return item.get_closest_marker("stack") is not None or item.nodeid.split("::")[0].endswith(".ipynb")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker


def _session_record() -> Path:
    """What this test run found and started, written by the first process that needs
    the stack and read by the one that ends the run (xdist's controller, or pytest)."""
    return Path(tempfile.gettempdir()) / f"lab-env-test-run-{os.environ['LAB_ENV_TEST_RUN']}.json"


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):  # xdist's workers inherit it: one record per run
        os.environ["LAB_ENV_TEST_RUN"] = f"{os.getpid()}-{os.urandom(3).hex()}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("serial") and _is_worker(item.config):
        pytest.fail(
            "this test is marked serial (it stops, restarts or loads the shared stack), so it must run "
            "alone: run it without -n (`make test` runs the serial tests after the others)",
            pytrace=False,
        )
    if item.get_closest_marker("containers") and _needs_stack(item) and not item.get_closest_marker("serial"):
        pytest.fail(
            "this containers test needs the native stack, but the containers lane runs beside phase 1, which "
            "owns it: mark it serial too, or run its services in containers",
            pytrace=False,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_cost_rank)  # xdist hands files to the workers in this order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """One worker runs a file's tests, in order: a notebook's cells share a kernel, and a
    module's fixtures (a graded batch, a cluster, a JupyterLab) are made once. The tests
    of a SIDE_BY_SIDE file are independent and go to either worker, one at a time."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order below, not most-tests-first
    return ByFile(config, log)


def work_unit(nodeid: str) -> str:
    """What one worker runs as a whole: the test's file, or the test alone if SIDE_BY_SIDE."""
    where = nodeid.split("::")[0]
    return nodeid if where in SIDE_BY_SIDE else where


# Each test grades one lab on its own.
SIDE_BY_SIDE = ("tests/grading/test_grading_labs.py",)
# The files that take minutes go first, so the two workers end together rather than
# one of them starting a long file at the end (bench/results/suite.md has the costs).
LONG_FIRST = (
    "tests/browser/test_browser.py",
    "tests/grading/test_grading.py",
    "tests/grading/test_grading_labs.py",
    "solutions/03_kafka.ipynb",
    "solutions/06_coordination.ipynb",
    "tests/runtime/test_native_cluster.py",
    "solutions/04_workflows.ipynb",
    "tests/marketplace/test_market.py",
    "tests/labs/lab06_coordination/test_lab06_checks.py",
)


def _cost_rank(item: pytest.Item) -> int:
    where = item.nodeid.split("::")[0]
    return LONG_FIRST.index(where) if where in LONG_FIRST else len(LONG_FIRST)


@pytest.fixture(scope="session", autouse=True)
def lab_stack(request: pytest.FixtureRequest):
    if not any(_needs_stack(item) for item in request.session.items):
        yield None
        return
    from lab_env.stack import is_up, up

    record = _session_record()
    with open(f"{record}.lock", "w") as lock:  # the first worker here starts the stack, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            started = [] if is_up() else up(progress=False)
            record.write_text(json.dumps({"started": started, "topics": sorted(_topics())}))
    yield json.loads(record.read_text())["started"]


@pytest.hookimpl(trylast=True)  # after pytest's own: the fixtures are torn down by then
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's Kafka topics go and the stack it started stops, once every worker is done."""
    if _is_worker(session.config) or "LAB_ENV_TEST_RUN" not in os.environ:
        return
    record = _session_record()
    if not record.exists():
        return
    made = json.loads(record.read_text())
    record.unlink()
    Path(f"{record}.lock").unlink(missing_ok=True)
    _delete_topics_made_since(set(made["topics"]))
    if made["started"] and not os.environ.get("LAB_ENV_KEEP_STACK"):
        from lab_env.stack import down

        down()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A check cell that wrote to stderr fails nbval with only "{'stderr'}": show the text."""
    report = (yield).get_result()
    outputs = getattr(item, "test_outputs", None) or []  # nbval's cell item
    err = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr")
    if call.when == "call" and err and getattr(item, "options", {}).get("check"):
        report.sections.append(("stderr written by this check cell", err))


def _topics() -> set[str]:
    from lab_env.runtime import kafka

    return set(kafka.topic_partitions_all())


def _delete_topics_made_since(before: set[str]) -> None:
    """The session's topics go: each run makes hundreds of partitions, and a broker
    that kept thousands took minutes to start."""
    from lab_env.runtime import kafka

    try:
        kafka.delete_topics(sorted(t for t in _topics() - before if not t.startswith("__")))
    except Exception as err:  # the stack may be down by now: leaving topics is no test failure
        print(f"\nconftest: could not delete this session's Kafka topics: {err}")
