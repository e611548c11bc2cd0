"""`lab-env progress` and `lab-env map`: the course as a learner and a maintainer see it."""

from __future__ import annotations

import argparse


def cmd_progress(args: argparse.Namespace) -> int:
    from lab_env.labs.course import progress_table

    print(progress_table())
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from lab_env.labs.course import LABS, lab_named, map_text

    labs = [lab_named(args.lab)] if args.lab else list(LABS)
    print("\n\n".join(map_text(lab) for lab in labs))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("progress", help="which checks passed in your last run of each lab").set_defaults(fn=cmd_progress)
    s = sub.add_parser(
        "map",
        help="where a lab lives: solution, student notebook, checks, helpers, tests, bench",
        epilog="example: lab-env map 04",
    )
    s.add_argument("lab", nargs="?", help="lab number, e.g. 04 (default: every lab)")
    s.set_defaults(fn=cmd_map)
