"""The `lab-env` command. Every subcommand prints one line on failure."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from lab_env.errors import LabEnvError

GREEN, RED, RESET = "\033[32m", "\033[31m", "\033[0m"


def _mark(ok: bool) -> str:
    color = sys.stdout.isatty()
    sym = "ok " if ok else "FAIL"
    return f"{GREEN if ok else RED}{sym}{RESET}" if color else sym


def cmd_setup(args: argparse.Namespace) -> int:
    from lab_env.stack.provision import setup

    seconds = setup(force=args.force, cli=args.cli, cluster=args.cluster)
    print(
        "setup complete ("
        + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        + "): run `lab-env up` to start the stack"
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from lab_env.stack import status, up

    started = up(**({"timeout": args.timeout} if args.timeout else {}))
    print(f"started: {', '.join(started)}" if started else "already running")
    _print_status(status())
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from lab_env.stack import down

    stopped = down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _print_status(rows) -> None:
    for st in rows:
        ports = ", ".join(f"{role} {port}" for role, port in st.ports.items())
        pid = f"pid {st.pid}" if st.pid else "-"
        print(f"  {_mark(st.ready)} {st.name:<10} {st.state:<18} {pid:<11} {ports}")


def cmd_status(args: argparse.Namespace) -> int:
    from lab_env.core.profile import current
    from lab_env.runtime.apps import running_apps
    from lab_env.stack import status

    rows = status()
    print(f"profile: {current().name}")
    _print_status(rows)
    apps = running_apps()
    print(f"apps: {', '.join(apps) if apps else 'none'}")
    return 0 if all(r.ready for r in rows) else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from lab_env.stack.doctor import run_doctor

    checks = run_doctor()
    for c in checks:
        print(f"  {_mark(c.ok)} {c.name:<11} {c.detail}")
        if not c.ok and c.fix:
            print(f"       fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_logs(args: argparse.Namespace) -> int:
    from lab_env.core import procs
    from lab_env.core.paths import logs_dir
    from lab_env.runtime.apps import apps_dir

    path = logs_dir() / f"{args.name}.log"
    if not path.exists():
        path = apps_dir() / args.name / ("app.log" if args.app else "daprd.log")
    if not path.exists():
        raise LabEnvError(
            f"no log named {args.name!r}", "use a service name (redis, kafka, placement, scheduler) or a running app id"
        )
    print(procs.tail(path, args.lines))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from lab_env.runtime.apps import dapr_app

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with dapr_app(args.app_id, command or None, components=args.components, timeout=args.timeout) as app:
        print(
            f"{app.app_id}: sidecar http {app.http_port}, grpc {app.grpc_port}"
            + (f", app {app.app_port}" if app.app_port else "")
            + " (Ctrl-C stops both)",
            flush=True,
        )
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        # Wait for Ctrl-C or SIGTERM with both blocked and at their default action: a
        # disposition inherited as "ignore" (a background shell, a test runner) would
        # otherwise discard them and leave this waiting forever.
        for sig in stop_signals:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from lab_env.notebooks.jupyterlab import lab_command
    from lab_env.stack import up

    up()
    argv, env = lab_command(port=args.port)
    os.execve(argv[0], argv, env)
    return 0


def cmd_build_labs(args: argparse.Namespace) -> int:
    from lab_env.grading.generate import build_labs

    paths = build_labs(check=args.check)
    if args.check:
        if paths:
            raise LabEnvError(
                f"labs/ is out of sync with solutions/: {', '.join(p.name for p in paths)}",
                "run `lab-env build-labs` and commit labs/",
            )
        print("labs/ is in sync with solutions/")
    else:
        print(f"wrote {', '.join(str(p.relative_to(p.parents[1])) for p in paths)}")
    return 0


def cmd_run_solutions(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab_env.grading.execute import execute
    from lab_env.grading.generate import SOLUTIONS_DIR

    paths = [Path(p) for p in args.notebooks] or sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        execute(path, write=True)
        print(f"executed {path.name}; outputs saved")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab_env.grading import grade_folder
    from lab_env.grading.report import summary_table
    from lab_env.grading.spec import load_spec

    lab = args.lab or _guess_lab(Path(args.submissions))
    results, out = grade_folder(
        Path(args.submissions),
        lab,
        Path(args.out) if args.out else None,
        jobs=args.jobs,
        cell_timeout=args.cell_timeout,
        timeout=args.timeout,
        regrade_identical=args.regrade_identical,
    )
    print(summary_table(results, load_spec(lab)))
    print(f"gradebook: {out / 'gradebook.csv'}; JUnit: {out / 'junit.xml'}; feedback: {out / 'feedback'}/")
    return 0


def _guess_lab(folder) -> str:
    import re

    match = re.search(r"(\d\d)", folder.resolve().name)
    if not match:
        raise LabEnvError(f"cannot tell which lab {folder} holds", "pass --lab NN")
    return match[1]


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


def cmd_env(args: argparse.Namespace) -> int:
    from lab_env.core.paths import dapr_home
    from lab_env.core.profile import current
    from lab_env.stack.provision import install_dapr_cli

    with contextlib.redirect_stdout(sys.stderr):  # stdout is for eval
        install_dapr_cli()  # built on first use (a few minutes, once)

    for key, value in current().dapr_cli_env().items():
        print(f"export {key}={value}")
    print(f"export PATH={dapr_home() / 'bin'}:$PATH")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab-env", description="Run the Dapr + Redis + Kafka lab stack.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("setup", help="install the native stack (idempotent, cached)")
    s.add_argument("--force", action="store_true", help="rebuild and re-download even if present")
    s.add_argument("--cli", action="store_true", help="also build the Dapr CLI now (otherwise on first use: lab 05)")
    s.add_argument(
        "--cluster",
        action="store_true",
        help="also build lab 05's native Kubernetes control plane (about 10 minutes the first time)",
    )
    s.set_defaults(fn=cmd_setup)

    s = sub.add_parser("up", help="start redis, kafka, placement and scheduler")
    s.add_argument("--timeout", type=float, default=None, help="seconds to wait for readiness (default 300)")
    s.set_defaults(fn=cmd_up)

    sub.add_parser("down", help="stop the stack and every lab app").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="what is running").set_defaults(fn=cmd_status)
    sub.add_parser("doctor", help="check versions, ports, components and a live round trip").set_defaults(fn=cmd_doctor)

    s = sub.add_parser("logs", help="last lines of a service's or an app's log")
    s.add_argument("name")
    s.add_argument("-n", "--lines", type=int, default=40)
    s.add_argument("--app", action="store_true", help="for an app id: the app's log instead of daprd's")
    s.set_defaults(fn=cmd_logs)

    s = sub.add_parser("run", help="run a command with a Dapr sidecar until Ctrl-C")
    s.add_argument("--app-id", required=True)
    s.add_argument("--components", nargs="*", default=None, help="component names to load (default: all)")
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- then the app command; {app_port} is replaced")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("lab", help="start the stack and open JupyterLab")
    s.add_argument("--port", type=int, default=None)
    s.set_defaults(fn=cmd_lab)

    from lab_env.cli.course import register as register_course

    register_course(sub)

    s = sub.add_parser("grade", help="grade a folder of learners' notebooks (gradebook, JUnit, feedback)")
    s.add_argument("submissions", help="folder: one <learner>.ipynb or <learner>/ folder each")
    s.add_argument("--lab", help="lab number, e.g. 01 (default: from the folder name)")
    s.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    # Safety nets against endless loops, never what decides a right answer.
    s.add_argument("--timeout", type=int, default=1800, help="seconds per notebook (a safety net)")
    s.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell (a safety net)")
    s.add_argument("--out", help="output folder (default: grades-<lab> next to the submissions)")
    s.add_argument(
        "--regrade-identical",
        action="store_true",
        help="run every submission, even where the graded notebook is identical to another's",
    )
    s.set_defaults(fn=cmd_grade)

    s = sub.add_parser("build-labs", help="generate labs/ from solutions/ (student versions)")
    s.add_argument("--check", action="store_true", help="fail if labs/ is out of sync instead of writing")
    s.set_defaults(fn=cmd_build_labs)

    s = sub.add_parser("run-solutions", help="execute solution notebooks and save their outputs (for nbval)")
    s.add_argument("notebooks", nargs="*", help="default: every solutions/NN_*.ipynb")
    s.set_defaults(fn=cmd_run_solutions)

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

    from lab_env.runtime.kafka import TOOLS

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

    from lab_env.runtime.clusters.kind import register as register_cluster

    register_cluster(sub)

    from lab_env.cli.market import register as register_market

    register_market(sub)

    sub.add_parser("env", help='print the variables a plain `dapr run` needs: eval "$(lab-env env)"').set_defaults(
        fn=cmd_env
    )
    return p


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
