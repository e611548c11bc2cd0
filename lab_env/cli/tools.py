"""Tools beside the labs: `lab-env scale` (many actors) and `lab-env kafka` (Kafka's own CLI tools)."""

from __future__ import annotations

import argparse
import os
import sys

from lab_env.errors import LabEnvError


def cmd_scale(args: argparse.Namespace) -> int:
    from lab_env.notebooks.widgets import require_stack
    from lab_env.runtime import scale
    from lab_env.runtime.actors import actor_type_in
    from lab_env.runtime.apps import stop_app

    require_stack()
    hosts = scale.start_hosts(args.hosts, name="scale")
    try:
        actor_type = actor_type_in(hosts[0], "ProductActor")
        marks = sorted({m for m in (10_000, 50_000, 100_000) if m < args.actors} | {args.actors})
        samples = scale.activate(
            hosts,
            actor_type,
            args.actors,
            "Stock",
            in_flight=args.in_flight,
            slices=sorted({*range(max(1, args.actors // 20), args.actors, max(1, args.actors // 20)), *marks}),
        )
        total = sum(s.seconds for s in samples)
        print(
            f"{args.actors:,} actors activated in {total:.1f} s: {args.actors / total:,.0f}/s, "
            f"p99 {scale.percentile([ms for s in samples for ms in s.latencies_ms], 0.99):.0f} ms "
            f"(worst slice of {samples[0].calls:,}: {max(s.p99_ms for s in samples):.0f} ms)"
        )
        for sample in samples:
            if sample.actors in marks:
                print(
                    f"  at {sample.actors:>7,} actors: "
                    + ", ".join(f"{k} {v:.0f} MB" for k, v in sample.rss_mb.items())
                )
        for host, count in scale.placement_spread(hosts, actor_type).items():
            print(f"  {host}: {count:,} active actors (placement's choice)")
        if args.plot:
            scale.plot(samples, scale.placement_spread(hosts, actor_type), args.plot)
            print(f"plot saved to {args.plot}")
    finally:
        for app in hosts:
            stop_app(app)
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from lab_env.runtime.kafka import tool_command

    argv = tool_command(args.tool, *args.args)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: Ctrl-C, stdin and the exit code are the tool's own.
    try:
        os.execvp(argv[0], argv)
    except OSError as err:
        raise LabEnvError(
            f"cannot run {argv[0]}: {err.strerror}",
            "install a Java 17+ runtime (`apt-get install openjdk-17-jre-headless`)",
        ) from err
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from lab_env.runtime.kafka import TOOLS

    s = sub.add_parser(
        "scale",
        help="activate many actors (100,000 by default) over one or more hosts and report",
        description="Start HOSTS apps hosting the reference ProductActor, activate ACTORS products "
        "through their sidecars with a progress bar, print rate, latency, memory and how "
        "placement spread them, then stop the hosts. Needs the stack (`lab-env up`).",
    )
    s.add_argument("--actors", type=int, default=100_000)
    s.add_argument("--hosts", type=int, default=1)
    s.add_argument("--in-flight", type=int, default=64)
    s.add_argument("--plot", metavar="FILE.png", help="also save the activation curve and placement spread")
    s.set_defaults(fn=cmd_scale)

    s = sub.add_parser(
        "kafka",
        help="run one of Kafka's own CLI tools (kafka-topics.sh etc.) against the lab broker",
        description="Run kafka-<tool>.sh's Java class from the installed Kafka jars; "
        "--bootstrap-server is added unless given.",
        epilog="example: lab-env kafka consumer-groups --describe --group G",
    )
    # Not choices=: an unknown tool is the usual one-line LabEnvError, not a usage dump.
    s.add_argument("tool", help=f"one of: {', '.join(TOOLS)}")
    s.add_argument("args", nargs=argparse.REMAINDER, help="passed to the tool as they are (e.g. --list, --help)")
    s.set_defaults(fn=cmd_kafka)
