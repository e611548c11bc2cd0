"""`lab-env devcontainer up | exec | down`: the project's devcontainer, started here for real."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def workspace_folder() -> Path:
    """Where the devcontainer runs from: a copy of this checkout (its onCreate writes a .venv of
    its own there, owned by the workspace user), kept between starts."""
    from lab_env.core.paths import REPO_ROOT, cache_dir

    return cache_dir() / "devcontainer" / REPO_ROOT.name


def cmd_devcontainer(args: argparse.Namespace) -> int:
    from lab_env.core.paths import REPO_ROOT
    from lab_env.stack import devcontainer_run, engine
    from lab_env.stack.images import bakery

    folder = workspace_folder()
    if args.action == "up":
        running = engine.up()
        bakery.build(running, list(devcontainer_run.IMAGES))
        started = time.perf_counter()
        devcontainer_run.copy_repo(REPO_ROOT, folder)
        devcontainer_run.up(running, folder)
        print(f"devcontainer up in {time.perf_counter() - started:.0f} s: onCreate ran, postStart's doctor is green")
        print("run in it: lab-env devcontainer exec -- <command>   (for example .venv/bin/lab-env status)")
        return 0
    found = engine.find()
    if found is None:
        print("no Docker engine answers: the devcontainer is not running", file=sys.stderr)
        return 1
    if args.action == "exec":
        done = devcontainer_run.exec_in(found, devcontainer_run.Workspace(folder, "", ""), args.command)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    devcontainer_run.down(found, folder)
    print(f"removed the devcontainer of {folder} (its caches stay in {', '.join(devcontainer_run.CACHE_VOLUMES)})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "devcontainer",
        help="the devcontainer, started here (up | exec -- CMD | down)",
        description="up starts .devcontainer's stack with the Dev Containers CLI on the local images "
        "(devcontainer/local/devcontainer.json), from a copy of this checkout under the lab-env cache; "
        "exec runs a command in its workspace; down removes its containers.",
    )
    s.add_argument("action", choices=("up", "exec", "down"))
    s.add_argument("command", nargs=argparse.REMAINDER, help="with exec: the command to run")
    s.set_defaults(fn=cmd_devcontainer)
