"""`lab-env progress`, `hint` and `map`: the course as a learner and a maintainer see it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lab_env.errors import LabEnvError


def cmd_progress(args: argparse.Namespace) -> int:
    from lab_env.labs.course import progress_table

    print(progress_table())
    return 0


def cmd_hint(args: argparse.Namespace) -> int:
    from lab_env.labs.hints import hint

    hint(args.lab, args.exercise, args.level)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from lab_env.labs.course import lab_named
    from lab_env.labs.reset import reset

    lab = lab_named(args.lab).number
    done = reset(lab)
    if not done.removed and not done.failed:
        print(f"nothing to reset: no run of lab {lab} is recorded (a run is kept when one of its checks runs)")
        return 0
    print(f"{'step':<9} {'removed':>6}  what")
    print("\n".join(step.line() for step in done.removed))
    if done.failed:
        for step, why in done.failed.items():
            print(f"{step:<9} {'failed':>6}  {why}")
        raise LabEnvError(
            f"lab {lab} is not fully reset ({', '.join(done.failed)})", "fix what it says, then reset again"
        )
    print(f"lab {lab} is reset; start its notebook with a fresh kernel (your progress is kept)")
    return 0


def cmd_solve(args: argparse.Namespace) -> int:

    from lab_env.labs.course import lab_named
    from lab_env.labs.solve import solve

    lab = lab_named(args.lab).number
    path = solve(lab, args.exercise, Path(args.notebook) if args.notebook else None)
    print(
        f"exercise {args.exercise} of lab {lab} filled in with its solution in {path}; "
        "reload the notebook, run that cell again, and your progress and the grader will say so"
    )
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from lab_env.labs.course import LABS, lab_named, map_text

    labs = [lab_named(args.lab)] if args.lab else list(LABS)
    print("\n\n".join(map_text(lab) for lab in labs))
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


def _solution_path(given: Path) -> Path:
    """A notebook path as given, or the solution of the lab it numbers ("7", "07")."""
    from lab_env.grading.generate import SOLUTIONS_DIR
    from lab_env.labs.course import lab_named

    if given.is_file():
        return given
    if given.suffix != ".ipynb" and given.name[:2].strip("_").isdigit():
        return SOLUTIONS_DIR / lab_named(given.name).notebook
    raise LabEnvError(f"no notebook {given}", "give a path to a .ipynb or a lab number such as 07")


def cmd_run_solutions(args: argparse.Namespace) -> int:

    from lab_env.grading.execute import execute
    from lab_env.grading.generate import SOLUTIONS_DIR

    paths = [_solution_path(Path(p)) for p in args.notebooks] or sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        execute(path, write=True)
        print(f"executed {path.name}; outputs saved")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("progress", help="which checks passed in your last run of each lab").set_defaults(fn=cmd_progress)
    s = sub.add_parser(
        "hint",
        help="the next hint of an exercise (its stub shows the first; the last may show code)",
        epilog="example: lab-env hint 01 3   (what hint(\"01\", 3) shows; each stub's 'Stuck?' line names its call)",
    )
    s.add_argument("lab", help="lab number, e.g. 01")
    s.add_argument("exercise", type=int, help="the number in the stub's hint(...) call")
    s.add_argument("level", type=int, nargs="?", help="a given level instead of the next one")
    s.set_defaults(fn=cmd_hint)
    s = sub.add_parser(
        "reset",
        help="remove what a lab's runs made: apps, actor and workflow state, topics, groups, clusters, files",
        epilog="example: lab-env reset 02   (other labs, other learners and your progress are left alone)",
    )
    s.add_argument("lab", help="lab number, e.g. 02")
    s.set_defaults(fn=cmd_reset)
    s = sub.add_parser(
        "solve",
        help="fill one exercise with its solution in your notebook, to go on (recorded, and graded as such)",
        epilog="example: lab-env solve 01 3   (the number in the stub's hint(...) call)",
    )
    s.add_argument("lab", help="lab number, e.g. 01")
    s.add_argument("exercise", type=int, help="the number in the stub's hint(...) call")
    s.add_argument("--notebook", help="the notebook to change (default: labs/NN_*.ipynb)")
    s.set_defaults(fn=cmd_solve)
    s = sub.add_parser(
        "map",
        help="where a lab lives: solution, student notebook, checks, helpers, tests, bench",
        epilog="example: lab-env map 04",
    )
    s.add_argument("lab", nargs="?", help="lab number, e.g. 04 (default: every lab)")
    s.set_defaults(fn=cmd_map)

    s = sub.add_parser("lab", help="start the stack and open JupyterLab")
    s.add_argument("--port", type=int, default=None)
    s.set_defaults(fn=cmd_lab)

    s = sub.add_parser("build-labs", help="generate labs/ from solutions/ (student versions)")
    s.add_argument("--check", action="store_true", help="fail if labs/ is out of sync instead of writing")
    s.set_defaults(fn=cmd_build_labs)

    s = sub.add_parser("run-solutions", help="execute solution notebooks and save their outputs (for nbval)")
    s.add_argument("notebooks", nargs="*", help="paths or lab numbers (07); default: every solutions/NN_*.ipynb")
    s.set_defaults(fn=cmd_run_solutions)
