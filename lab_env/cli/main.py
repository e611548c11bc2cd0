"""The `lab-env` command: one parser built from each command group's `register(sub)`.

Every subcommand prints one line on failure (a LabEnvError) and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lab_env.cli import cluster, course, devcontainer, engine, grade, market, stack, tools
from lab_env.errors import LabEnvError

GROUPS = (stack, course, grade, tools, cluster, market, engine, devcontainer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab-env", description="Run the Dapr + Redis + Kafka lab stack.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except LabEnvError as err:
        print(f"lab-env: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab-env: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
