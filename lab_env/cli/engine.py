"""`lab-env engine up | status | down` and `lab-env images build | status | prune`: the Docker engine and its images."""

from __future__ import annotations

import argparse
import time


def cmd_engine(args: argparse.Namespace) -> int:
    from lab_env.stack import engine
    from lab_env.stack.images import busybox

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
    register_images(sub)


def cmd_images(args: argparse.Namespace) -> int:
    from lab_env.stack import engine
    from lab_env.stack.images import bakery

    before = engine.find()
    found = before or engine.start()
    try:
        if args.action == "prune":
            if args.names:
                print("prune takes no image names: it removes only images no tag names any more")
                return 2
            pruned = bakery.prune(found, label=bakery.LABEL)  # the bakery's: an engine may hold others' images
            print(f"removed {pruned.images} untagged image(s) of lab-env's, {pruned.reclaimed} freed; tagged kept")
            return 0
        if args.action == "build":
            for done in bakery.build(found, args.names or None, force=args.force):
                print(f"{done.action:5}  {done.ref:40} {done.seconds:6.1f} s")
            return 0
        print(f"{'image':9} {'reference':38} {'stands in for':38} {'size':>8} {'age':>7}  state")
        for row in bakery.status(found):
            state = "current" if row.current else ("stale: rebuild" if row.built else "not built")
            size = f"{row.size_mb:.0f} MB" if row.built else "-"
            print(f"{row.name:9} {row.ref:38} {row.upstream or '-':38} {size:>8} {row.age:>7}  {state}")
        return 0
    finally:
        if before is None:  # started for this command: not left answering
            engine.stop()


def register_images(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "images",
        help="the local images (build [NAME...] | status | prune)",
        description="build makes each image the project names from Debian packages and the project's own builds, "
        "never pulling; an image whose recipe is unchanged is kept. status shows what is built, its size and age. "
        "prune removes the images of the bakery's no tag names any more (each rebuild leaves the one before it).",
    )
    s.add_argument("action", choices=("build", "status", "prune"))
    s.add_argument("names", nargs="*", help="images to build (default: all), with the images they need")
    s.add_argument("--force", action="store_true", help="rebuild even when the recipe is unchanged")
    s.set_defaults(fn=cmd_images)
