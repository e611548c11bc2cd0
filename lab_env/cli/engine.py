"""`lab-env engine up | status | down`: the Docker engine lab-env uses (stack/engine)."""

from __future__ import annotations

import argparse
import time


def cmd_engine(args: argparse.Namespace) -> int:
    from lab_env.stack import busybox, engine

    if args.action == "up":
        started = time.perf_counter()
        found = engine.up()
        took = time.perf_counter() - started
        whose = "lab-env's own dockerd" if found.managed else "an engine lab-env did not start"
        print(f"{whose} answers on {found.host} ({took:.1f} s)")
        print(f"use it: export DOCKER_HOST={found.host}")
        return 0
    if args.action == "status":
        answering = engine.find()
        if answering is None:
            print("no Docker engine answers (`lab-env engine up` starts lab-env's own)")
            return 1
        image = busybox.REF if busybox.built(answering) else None
        print(f"{answering.host}{' (lab-env)' if answering.managed else ''}: {engine.info(answering, image).line()}")
        return 0
    pid = engine.running_pid()
    left = engine.stop()
    print(f"stopped lab-env's dockerd (pid {pid})" if pid else "lab-env's dockerd was not running")
    if left:
        print(f"also killed or unmounted: {', '.join(left)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "engine",
        help="the Docker engine (up | status | down)",
        description="up uses an engine that answers ($DOCKER_HOST, /var/run/docker.sock), else starts lab-env's "
        "own dockerd (as root): images under the lab-env cache, its socket under /run, never the default one. "
        "down stops lab-env's own only.",
    )
    s.add_argument("action", choices=("up", "status", "down"))
    s.set_defaults(fn=cmd_engine)
