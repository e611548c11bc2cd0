"""Run the test suite in two phases: side by side on both cores, then alone.

    python tests/run_suite.py                 # everything (`make test`, what CI runs)
    python tests/run_suite.py --quick         # pure logic and helpers, no stack (`make test-quick`)
    python tests/run_suite.py --lab 03        # one lab's whole evidence (`make test LAB=03`)
    python tests/run_suite.py -- -x -k kafka  # anything after -- goes to pytest

Phase 1 runs every test not marked `serial` with pytest-xdist on 2 workers,
a file per worker at a time (conftest.py's scheduler: a notebook's cells share
a kernel, a module's fixture is made once). Beside it, a third lane runs the
tests marked `containers` (and not `serial`) in a process of its own: they run
their services in containers on private networks, so they touch nothing of the
native stack, and they mostly wait (for compose, a JVM in a container, a health
check) while phase 1 leaves a third of the two cores idle. Phase 2 runs the
`serial` tests in one process, alone: they stop, restart or load the shared
stack, or stop the engine. Every lane runs even if another fails, so the stack
is stopped at the end either way; the exit code is the first failure's. The
stack is kept between the phases and stopped at the end if this run started it
(LAB_ENV_KEEP_STACK=1 keeps it); so is lab-env's own Docker engine, started
once before the lanes so that no test or notebook stops it under another.

Before any test (every tier) the gate runs: `ruff format --check`, `ruff check`
and `mypy`, as pyproject.toml configures them; the first that fails stops the
run with one line naming the command to run.

Tests marked `containers` use a real Docker engine (lab-env's own, as root, where
`lab-env setup --containers` installed docker.io); the full tier runs them in the
containers lane (test_engine.py, which stops and restarts the engine, in phase 2).
The quick tier leaves them out; LAB_ENV_CONTAINERS=0 leaves them out of any tier.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
NO_TESTS = 5  # pytest's exit code when a selection is empty
GATE_FAILED = 1
BIN = Path(sys.executable).parent  # the venv's ruff and mypy (the test group) sit next to its python


def lab_evidence() -> dict[str, list[str]]:
    """Each lab's evidence: its solution notebook and the tests course.LABS lists for it (`lab-env map NN`)."""
    from lab_env.labs.course import LABS

    return {lab.number: [f"solutions/{lab.notebook}", *lab.tests] for lab in LABS}


def _shown(tool: str) -> str:
    """How to type ``tool`` from the repository's root: .venv/bin/ruff, say."""
    path = BIN / tool
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# Each step of the gate, cheapest first: its command and, when it fails, what to run.
GATE = [
    (["ruff", "format", "--check"], "format check failed: run `{ruff} format`"),
    (["ruff", "check"], "lint failed: run `{ruff} check --fix`, then fix what it still lists"),
    (["mypy"], "type check failed: run `{mypy}` and fix what it lists"),
]


def gate(root: Path = ROOT) -> str | None:
    """Run the gate's steps in ``root``, as its pyproject.toml configures them. None when
    all pass; else the first failure's one line (its tool's output is printed before)."""
    for (tool, *rest), fix in GATE:
        if not (BIN / tool).exists():
            return f"{tool} is missing from {BIN}: run `.tools/bin/uv sync --frozen --inexact --group test`"
        done = subprocess.run([str(BIN / tool), *rest], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            print((done.stdout + done.stderr).rstrip()[-8000:], file=sys.stderr, flush=True)
            return fix.format(ruff=_shown("ruff"), mypy=_shown("mypy"))
    return None


def _start(args: list[str], env: dict[str, str], log: IO[str] | None = None) -> subprocess.Popen:
    aside = "  (in a lane beside the next; its output follows when both end)" if log else ""
    print(f"\n$ pytest {' '.join(args)}{aside}", flush=True)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
    )


def _wait(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # pytest got the Ctrl-C too: let it tear its fixtures down
            continue


def _pytest(args: list[str], env: dict[str, str]) -> int:
    return _wait(_start(args, env))


def _beside(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, IO[str]]:
    """pytest in a lane of its own, its output kept aside (shown by _shown_after: lanes never interleave)."""
    log = tempfile.TemporaryFile("w+", encoding="utf-8")
    return _start(args, env, log), log


def _shown_after(lane: tuple[subprocess.Popen, IO[str]]) -> int:
    proc, log = lane
    code = _wait(proc)
    log.seek(0)
    sys.stdout.write(log.read())
    sys.stdout.flush()
    log.close()
    return code


def _own_engine(env: dict[str, str]) -> bool:
    """Start lab-env's own Docker engine for the run where the containers tests may (True if this did):
    the lane's tests and lab 05's notebook find it up, so none of them stops it under another."""
    if env.get("LAB_ENV_CONTAINERS") != "1" or os.geteuid() != 0 or not shutil.which("dockerd"):
        return False  # the tests skip, each saying why
    from lab_env.errors import LabEnvError
    from lab_env.stack import engine

    if engine.find() is not None:
        return False
    try:
        engine.start()
    except LabEnvError as err:  # the containers tests then say it again, each where it applies
        print(f"the Docker engine did not start: {err}", flush=True)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tier = parser.add_mutually_exclusive_group()
    tier.add_argument("--quick", action="store_true", help="tests that need no stack (under 3 minutes)")
    tier.add_argument("--lab", choices=sorted(lab_evidence()), help="one lab's notebook and tests")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    if any(a == "-m" or a.startswith("-m") and not a.startswith("--") for a in args.pytest_args):
        parser.error("each phase sets its own -m (serial or not): select with -k or paths instead")

    start = time.perf_counter()
    failed = gate()
    if failed:
        print(failed, file=sys.stderr, flush=True)
        return GATE_FAILED
    print(f"gate: {', '.join(' '.join(cmd) for cmd, _ in GATE)} passed in {time.perf_counter() - start:.0f} s")

    paths = lab_evidence()[args.lab] if args.lab else []
    env = dict(os.environ)
    # The tests that start a real Docker engine (marker `containers`): in the full tier unless
    # LAB_ENV_CONTAINERS=0; their fixture skips them, saying why, where no engine can start.
    env.setdefault("LAB_ENV_CONTAINERS", "0" if args.quick else "1")
    engine = "" if env["LAB_ENV_CONTAINERS"] == "1" else " and not containers"
    if args.quick:
        marks = "not stack and not serial and not slow" + engine
        return _pytest(["-n", str(WORKERS), "--dist", "loadscope", "-m", marks, "tests", *args.pytest_args], env)

    from lab_env.stack import down, is_up
    from lab_env.stack import engine as engines

    was_up = is_up()
    keep = env.get("LAB_ENV_KEEP_STACK")
    env["LAB_ENV_KEEP_STACK"] = "1"  # between the phases; stopped below
    codes = []
    started_engine = False
    tests_started = time.perf_counter()
    try:
        started_engine = _own_engine(env)
        lane = None
        if env["LAB_ENV_CONTAINERS"] == "1":
            lane = _beside(["-m", "containers and not serial", *paths, *args.pytest_args], env)
        codes.append(
            _pytest(
                ["-n", str(WORKERS), "--dist", "loadscope", "-m", "not serial and not containers", *paths]
                + args.pytest_args,
                env,
            )
        )
        if lane is not None:
            codes.append(_shown_after(lane))
        codes.append(_pytest(["-m", "serial" + engine, *paths, *args.pytest_args], env))
    finally:  # also after a failure or a Ctrl-C: nothing this run started is left running
        if not was_up and not keep:
            down()
        if started_engine:
            engines.stop()
    # One figure for the whole run, the lanes that overlap counted once (bench/suite_bench.py reads it).
    print(f"tests: {time.perf_counter() - tests_started:.1f} s of wall from the first pytest to the last", flush=True)
    ran = [code for code in codes if code != NO_TESTS]
    if not ran:
        return NO_TESTS
    return next((code for code in ran if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
