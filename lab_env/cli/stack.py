"""The stack's commands: setup, up, down, status, doctor, logs, run and env."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from lab_env.errors import LabEnvError

GREEN, RED, RESET = "\033[32m", "\033[31m", "\033[0m"


def _mark(ok: bool) -> str:
    color = sys.stdout.isatty()
    sym = "ok " if ok else "FAIL"
    return f"{GREEN if ok else RED}{sym}{RESET}" if color else sym


def _print_status(rows) -> None:
    for st in rows:
        ports = ", ".join(f"{role} {port}" for role, port in st.ports.items())
        pid = f"pid {st.pid}" if st.pid else "-"
        print(f"  {_mark(st.ready)} {st.name:<10} {st.state:<18} {pid:<11} {ports}")


def cmd_setup(args: argparse.Namespace) -> int:
    from lab_env.stack.provision import setup

    if args.containers:
        from lab_env.stack.provision.containers import install_containers

        try:
            print(install_containers())
        except LabEnvError as err:  # not root, no apt: say what to do, then set up the rest
            print(f"containers: {err}")
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("setup", help="install the native stack (idempotent, cached)")
    s.add_argument("--force", action="store_true", help="rebuild and re-download even if present")
    s.add_argument("--cli", action="store_true", help="also build the Dapr CLI now (otherwise on first use: lab 05)")
    s.add_argument(
        "--cluster",
        action="store_true",
        help="also build lab 05's native Kubernetes control plane (about 10 minutes the first time)",
    )
    s.add_argument(
        "--containers",
        action="store_true",
        help="also install a Docker engine (Debian's docker.io, as root with apt; elsewhere it says what to do)",
    )
    s.set_defaults(fn=cmd_setup)

    s = sub.add_parser("up", help="start redis, kafka, placement and scheduler")
    s.add_argument("--timeout", type=float, default=None, help="seconds to wait for readiness (default 300)")
    s.set_defaults(fn=cmd_up)

    sub.add_parser("down", help="stop the stack, every lab app and every native Kubernetes cluster").set_defaults(
        fn=cmd_down
    )

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

    sub.add_parser("env", help='print the variables a plain `dapr run` needs: eval "$(lab-env env)"').set_defaults(
        fn=cmd_env
    )
