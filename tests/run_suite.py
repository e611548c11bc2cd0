"""Run the test suite in two phases: side by side on both cores, then alone.

    python tests/run_suite.py                 # everything (`make test`, what CI runs)
    python tests/run_suite.py --quick         # pure logic and helpers, no stack (`make test-quick`)
    python tests/run_suite.py --lab 03        # one lab's whole evidence (`make test LAB=03`)
    python tests/run_suite.py -- -x -k kafka  # anything after -- goes to pytest

Phase 1 runs every test not marked `serial` with pytest-xdist on 2 workers,
a file per worker at a time (conftest.py's scheduler: a notebook's cells share
a kernel, a module's fixture is made once). Phase 2 runs the `serial` tests in one process, alone:
they stop, restart or load the shared stack. Both phases run even if the
first fails, so the stack is stopped at the end either way; the exit code is
the first failure's. The stack is kept between the phases and stopped at the
end if this run started it (LAB_ENV_KEEP_STACK=1 keeps it).

Before any test (every tier) the gate runs: `ruff format --check`, `ruff check`
and `mypy`, as pyproject.toml configures them; the first that fails stops the
run with one line naming the command to run.

Tests marked `containers` start a real Docker engine (lab-env's own, as root, where
`lab-env setup --containers` installed docker.io); they run alone in the second phase
of the full tier. The quick tier leaves them out; LAB_ENV_CONTAINERS=0 leaves them out
of any tier.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

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


def _pytest(args: list[str], env: dict[str, str]) -> int:
    print(f"\n$ pytest {' '.join(args)}", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # pytest got the Ctrl-C too: let it tear its fixtures down
            continue


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

    was_up = is_up()
    keep = env.get("LAB_ENV_KEEP_STACK")
    env["LAB_ENV_KEEP_STACK"] = "1"  # between the phases; stopped below
    codes = []
    try:
        codes.append(
            _pytest(
                ["-n", str(WORKERS), "--dist", "loadscope", "-m", "not serial" + engine, *paths, *args.pytest_args], env
            )
        )
        codes.append(_pytest(["-m", "serial" + engine, *paths, *args.pytest_args], env))
    finally:  # also after a failure or a Ctrl-C: nothing this run started is left running
        if not was_up and not keep:
            down()
    ran = [code for code in codes if code != NO_TESTS]
    if not ran:
        return NO_TESTS
    return next((code for code in ran if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
