"""The course: its labs in order, and the learner's progress through them.

Every check a learner runs in a notebook records its outcome here (the
grader's runs never do), so the overview notebook and ``lab-env progress``
can show which checks passed in the learner's last run of each lab.

The record is one small JSON file, ``<state dir>/progress.json`` (moved by
LAB_ENV_PROGRESS_FILE): ``{"01": {"base_agent": {"passed": true, "at": ...}}}``.
"""

from __future__ import annotations

import fcntl
import html
import importlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.core.paths import REPO_ROOT, state_dir
from lab_env.errors import LabEnvError


@dataclass(frozen=True)
class Lab:
    number: str  # "01"
    title: str
    builds: str  # what this lab adds to the marketplace
    notebook: str  # file name in labs/ and solutions/
    tests: tuple[str, ...] = ()  # pytest paths that are this lab's evidence (`make test LAB=NN` runs them)
    bench: tuple[str, ...] = ()  # scripts under bench/ that measure what it teaches

    @property
    def package(self) -> str:
        """This lab's package: ``01_actors.ipynb`` -> ``lab_env.labs.lab01_actors``."""
        return f"lab_env.labs.lab{self.notebook.removesuffix('.ipynb')}"

    @property
    def checks_module(self) -> str:
        return f"{self.package}.checks"

    @property
    def available(self) -> bool:
        return (REPO_ROOT / "labs" / self.notebook).exists()

    def checks(self) -> dict[str, str]:
        """This lab's checks in notebook order: function name -> the name a learner reads."""
        path = REPO_ROOT / "labs" / self.notebook
        if not path.exists():
            return {}
        import nbformat

        module = importlib.import_module(self.checks_module)
        names = [
            c.metadata["lab_env"]["check"]
            for c in nbformat.read(path, as_version=4).cells
            if "check" in c.get("metadata", {}).get("lab_env", {})
        ]
        return {name: getattr(getattr(module, name, None), "check_name", name) for name in names}


LABS: tuple[Lab, ...] = (
    Lab(
        "01",
        "Agents as virtual actors",
        "products and agents with identity, state and one call at a time; 100,000 of them on one machine",
        "01_actors.ipynb",
        tests=(
            "tests/runtime/test_actor_errors.py",
            "tests/runtime/test_actor_failover.py",
            "tests/runtime/test_actor_reentrancy.py",
            "tests/runtime/test_metrics.py",
            "tests/runtime/test_scale.py",
            "tests/grading/test_grading.py",
            "tests/grading/test_grading_assembly.py",
        ),
        bench=("bench/actors_bench.py",),
    ),
    Lab(
        "02",
        "Event-driven agents with Dapr pub/sub",
        "listings and orders as events; inboxes, routing, retries and dead letters; a registry of sellers",
        "02_pubsub.ipynb",
        tests=("tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[02]",),
        bench=(),
    ),
    Lab(
        "03",
        "Event streams with Apache Kafka",
        "the order log: partitions, consumer groups, exactly-once stock updates, a supply chain, replication",
        "03_kafka.ipynb",
        tests=(
            "tests/labs/lab03_kafka/test_lab03_checks.py",
            "tests/runtime/test_kafka_helpers.py",
            "tests/runtime/test_kafka_replication.py",
            "tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[03]",
        ),
        bench=("bench/kafka_bench.py",),
    ),
    Lab(
        "04",
        "Durable agent workflows",
        "orders as sagas that survive crashes, approvals, fan-out research, "
        "a mediator negotiating between buyer and seller",
        "04_workflows.ipynb",
        tests=(
            "tests/labs/lab04_workflows/test_lab04_checks.py",
            "tests/runtime/test_workflows_helpers.py",
            "tests/runtime/test_workflow_versioning.py",
            "tests/labs/test_check_stderr.py",
            "tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[04]",
        ),
        bench=("bench/workflow_drill.py",),
    ),
    Lab(
        "05",
        "Agent homes",
        "one spec for the agents, rendered to dapr run -f, containers and Kubernetes, with access control",
        "05_agent_homes.ipynb",
        tests=(
            "tests/marketplace/test_homes.py",
            "tests/marketplace/test_home_security.py",
            "tests/marketplace/test_native_home.py",
            "tests/marketplace/test_container_home.py",
            "tests/runtime/test_secure_plane.py",
            "tests/runtime/test_native_cluster.py",
            "tests/runtime/test_kind_cluster.py",  # opt-in: LAB_ENV_KIND=1 (kind on local images)
            "tests/runtime/test_kind_home.py",
            "tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[05]",
        ),
        bench=("bench/cluster_bench.py",),
    ),
    Lab(
        "06",
        "How agents coordinate",
        "hierarchies, contract nets, auctions and votes between the marketplace's agents",
        "06_coordination.ipynb",
        tests=(
            "tests/labs/lab06_coordination/test_lab06_checks.py",
            "tests/runtime/test_metrics.py::test_the_callers_sidecar_counts_its_retries_and_the_breaker_opening",
            "tests/marketplace/test_coordination.py",
            "tests/marketplace/test_coordination_agents.py",
            "tests/marketplace/test_auctioneer.py",
            "tests/marketplace/test_ballot.py",
            "tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[06]",
        ),
        bench=(),
    ),
    Lab(
        "07",
        "Capstone: the marketplace",
        "the whole society end to end, surviving crashes",
        "07_capstone.ipynb",
        tests=(
            "tests/labs/lab07_capstone/test_lab07_checks.py",
            "tests/labs/lab07_capstone/test_validation_suite.py",
            "tests/models/test_offline_model.py",
            "tests/marketplace/test_market.py",
            "tests/marketplace/test_market_actors.py",
            "tests/marketplace/test_market_allocation.py",
            "tests/marketplace/test_market_view.py",
            "tests/marketplace/test_offer_policy.py",
            "tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[07]",
        ),
        bench=("bench/market_scale.py", "bench/market_drill.py"),
    ),
)


def lab_named(number: str) -> Lab:
    """The lab numbered ``number`` ("4", "04" or "04_workflows")."""
    wanted = number[:2].zfill(2) if number[:2].isdigit() else number.zfill(2)
    for lab in LABS:
        if lab.number == wanted:
            return lab
    raise LabEnvError(f"no lab {number!r}", f"choose one of {', '.join(lab.number for lab in LABS)}")


def helpers_of(lab: Lab) -> list[str]:
    """The lab_env modules its solution imports (in the kernel and in its app files), besides its checks."""
    import ast

    import nbformat

    found: set[str] = set()
    for cell in nbformat.read(REPO_ROOT / "solutions" / lab.notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lab_env"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if _is_module(full) else _home_of(node.module or "", alias.name))
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("lab_env")}
    return sorted(m for m in found if m not in ("lab_env", lab.checks_module))


def _home_of(module: str, name: str) -> str:
    """The module that defines ``name`` (``lab_env``'s face re-exports, e.g. start_app from runtime.apps)."""
    defined_in = getattr(getattr(importlib.import_module(module), name, None), "__module__", None)
    return defined_in if isinstance(defined_in, str) and defined_in.startswith("lab_env") else module


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def module_path(module: str) -> str:
    """``lab_env.runtime.kafka`` -> ``lab_env/runtime/kafka.py`` (or its package folder)."""
    base = REPO_ROOT / Path(*module.split("."))
    return str((base if base.is_dir() else base.with_suffix(".py")).relative_to(REPO_ROOT))


def lab_map(lab: Lab) -> dict[str, list[str]]:
    """Where everything of one lab lives: the one-minute map `lab-env map NN` prints."""
    return {
        "solution": [f"solutions/{lab.notebook}"],
        "student notebook": [f"labs/{lab.notebook} (generated: lab-env build-labs)"],
        "checks": [module_path(lab.checks_module)],
        "helpers": [module_path(m) for m in helpers_of(lab)],
        "tests": list(lab.tests),
        "bench": list(lab.bench),
    }


def map_text(lab: Lab) -> str:
    rows = [f"lab {lab.number}: {lab.title}"]
    for part, paths in lab_map(lab).items():
        rows.append(f"  {part + ':':<18}{paths[0] if paths else '-'}")
        rows += [f"  {'':<18}{path}" for path in paths[1:]]
    return "\n".join(rows)


def package_docstring(lab: Lab) -> str:
    """The docstring of the lab's package: its one-minute map as a paragraph (tests/labs/test_course.py keeps
    them equal; `lab-env map NN` prints the same as a table)."""
    import textwrap

    parts = "; ".join(f"{part}: {', '.join(paths) or 'none'}" for part, paths in lab_map(lab).items())
    body = textwrap.fill(f"It builds {lab.builds}. Its map: {parts}.", width=100, break_on_hyphens=False)
    return f"Lab {lab.number}: {lab.title}.\n\n{body}\n"


LAB_TIMES = REPO_ROOT / "bench" / "results" / "lab_times.json"  # bench/lab_times.py


def time_line(notebook: dict, seconds: float) -> str:
    """The "**Time.**" line of a lab's first cell: the measured run time of its cells, and its checks."""
    checks = [c for c in notebook["cells"] if c["cell_type"] == "code" and "check" in c["metadata"].get("lab_env", {})]
    hidden = [c for c in checks if "instructor" in c["metadata"].get("tags", [])]
    points = sum(c["metadata"]["lab_env"].get("points", 0) for c in checks)
    graded = f"{len(checks) - len(hidden)} checks" + (f" and {len(hidden)} the grader alone runs" if hidden else "")
    return (
        f"**Time.** Running every cell takes about {max(1, round(seconds / 60))} min on a 2-core machine "
        f"(`bench/results/lab_times.md`). The rest is yours: reading, the exercises, and {graded}, "
        f"{points} points in all."
    )


def record_path() -> Path:
    chosen = os.environ.get("LAB_ENV_PROGRESS_FILE")  # LAB_ENV_PROGRESS is for progress bars
    return Path(chosen).expanduser() if chosen else state_dir() / "progress.json"


def load() -> dict[str, dict[str, dict]]:
    try:
        data = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(lab: str, check: str, passed: bool) -> None:
    """Keep the latest outcome of ``check`` (the check function's name) in ``lab``. Never fails a check: a
    read-only home just means no progress record."""
    _update(lambda data: data.setdefault(lab, {}).__setitem__(check, {"passed": passed, "at": time.time()}))


def _update(change: Callable[[dict], None]) -> None:
    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two kernels may record at once
            data = load()
            change(data)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)
    except OSError:
        pass


def record_hint(lab: str, exercise: int, level: int) -> None:
    """Keep the deepest hint level revealed for an exercise (under "hints", beside the labs)."""
    _update(lambda data: _deeper(data.setdefault("hints", {}).setdefault(lab, {}), str(exercise), level))


def _deeper(seen: dict, exercise: str, level: int) -> None:
    seen[exercise] = max(level, seen.get(exercise, 0))


def hints_revealed() -> dict[str, dict[str, int]]:
    """{lab: {exercise: deepest level revealed}}; level 1 is in the stub, so only hint() calls count."""
    hints = load().get("hints", {})
    return hints if isinstance(hints, dict) else {}


def record_run(lab: str, token: str) -> None:
    """Keep that the run ``token`` (a kernel's run token) worked on ``lab``: what `lab-env reset` removes."""
    _update(lambda data: _add_once(data.setdefault("runs", {}).setdefault(lab, []), token))


def _add_once(tokens: list, token: str) -> None:
    if token not in tokens:
        tokens.append(token)


def runs_of(lab: str) -> list[str]:
    """The run tokens recorded for ``lab``, oldest first."""
    found: object = load().get("runs", {}).get(lab, [])
    return [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def forget_runs(lab: str, tokens: list[str]) -> None:
    """Drop ``tokens`` from ``lab``'s runs (after `lab-env reset` removed what they made)."""

    def drop(data: dict) -> None:
        runs = data.setdefault("runs", {})
        runs[lab] = [t for t in runs.get(lab, []) if t not in tokens]

    _update(drop)


def solved(lab: str) -> list[int]:
    """The exercises of ``lab`` filled in with their solution (`lab-env solve`), in order."""
    found: object = load().get("solved", {}).get(lab, [])
    return sorted(n for n in found if isinstance(n, int)) if isinstance(found, list) else []


def record_solved(lab: str, exercise: int) -> None:
    _update(lambda data: _add_once(data.setdefault("solved", {}).setdefault(lab, []), exercise))  # type: ignore[arg-type]


def lab_of_module(module: str) -> str | None:
    """'lab_env.labs.lab01_actors.checks' -> '01'."""
    return next((lab.number for lab in LABS if module == lab.checks_module), None)


@dataclass(frozen=True)
class LabProgress:
    lab: Lab
    passed: list[str]
    failed: list[str]
    total: int
    hints: dict[str, int] = field(default_factory=dict)  # exercise -> deepest hint level revealed
    solved: list[int] = field(default_factory=list)  # exercises filled in by `lab-env solve`

    @property
    def status(self) -> str:
        if not self.lab.available:
            return "coming"
        if self.total and len(self.passed) == self.total:
            return "done"
        return "started" if self.passed or self.failed else "not started"


def progress() -> list[LabProgress]:
    data = load()
    out = []
    for lab in LABS:
        names = lab.checks()
        seen = data.get(lab.number, {})
        out.append(
            LabProgress(
                lab,
                [shown for n, shown in names.items() if seen.get(n, {}).get("passed")],
                [shown for n, shown in names.items() if n in seen and not seen[n].get("passed")],
                len(names),
                {k: v for k, v in hints_revealed().get(lab.number, {}).items() if isinstance(v, int)},
                solved(lab.number),
            )
        )
    return out


def _hints_text(hints: dict[str, int]) -> str:
    return ", ".join(
        f"hint(..., {n}) to level {level}" for n, level in sorted(hints.items(), key=lambda kv: int(kv[0]))
    )


def _solved_text(exercises: list[int]) -> str:
    return f"filled in with the solution (lab-env solve): exercise {', '.join(map(str, exercises))}"


_MARK = {"done": "\u2705", "started": "\u23f3", "not started": "\u2b1c", "coming": "\U0001f6a7"}


def progress_table() -> str:
    """Plain text, for `lab-env progress`."""
    rows = [f"{'lab':<4} {'':<2} {'checks':>7}  title"]
    for p in progress():
        checks = f"{len(p.passed)}/{p.total}" if p.lab.available else "-"
        rows.append(f"{p.lab.number:<4} {_MARK[p.status]:<2} {checks:>7}  {p.lab.title}")
        if p.failed:
            rows.append(f"{'':<15}not passing yet: {', '.join(p.failed)}")
        if p.hints:
            rows.append(f"{'':<15}hints asked for: {_hints_text(p.hints)}")
        if p.solved:
            rows.append(f"{'':<15}{_solved_text(p.solved)}")
    rows.append(f"(from {record_path()}: the checks you ran in the notebooks)")
    return "\n".join(rows)


def overview_html() -> str:
    """The overview notebook's table: each lab, what it builds, a link, and progress."""
    rows = []
    for p in progress():
        lab = p.lab
        title = html.escape(lab.title)
        link = f'<a href="{lab.notebook}">{title}</a>' if lab.available else f"{title} (coming)"
        bar = ""
        if lab.available and p.total:
            share = len(p.passed) / p.total
            bar = (
                f'<div style="background:#eee;width:120px;height:10px;display:inline-block;vertical-align:middle">'
                f'<div style="background:#2e7d32;width:{120 * share:.0f}px;height:10px"></div></div> '
                f"{len(p.passed)}/{p.total}"
            )
        todo = f"<br><small>not passing yet: {html.escape(', '.join(p.failed))}</small>" if p.failed else ""
        if p.hints:
            todo += f"<br><small>hints asked for: {html.escape(_hints_text(p.hints))}</small>"
        if p.solved:
            todo += f"<br><small>{html.escape(_solved_text(p.solved))}</small>"
        rows.append(
            f"<tr><td>{lab.number}</td><td>{_MARK[p.status]}</td><td style='text-align:left'>{link}<br>"
            f"<small>{html.escape(lab.builds)}</small>{todo}</td><td>{bar}</td></tr>"
        )
    return (
        "<table><thead><tr><th>lab</th><th></th><th style='text-align:left'>what it builds</th>"
        "<th>checks passed</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


OVERVIEW_NAME = "00-overview.ipynb"  # a dash: not a lab (labs match NN_*.ipynb); sorts first


def overview_notebook():
    """labs/00-overview.ipynb, written by `lab-env build-labs` from LABS above."""
    import nbformat.v4 as nbf

    listing = "\n".join(
        f"{int(lab.number) if lab.number.isdigit() else lab.number}. "
        + (f"[{lab.title}]({lab.notebook})" if lab.available else f"{lab.title} *(coming)*")
        + f": {lab.builds}."
        for lab in LABS
    )
    intro = (
        "# The agent marketplace: course overview\n\n"
        "Each lab builds one piece of a **multi-agent marketplace** (products, buyers, sellers, orders and a "
        "mediator) on a real stack: Dapr sidecars, placement and scheduler, Redis and Apache Kafka. Work "
        "through them in order:\n\n" + listing + "\n\n"
        "In every lab, run the first cell: it loads the helpers and shows whether the stack is up. Each "
        "exercise has a **check** cell below it that tells you, in one line, what is right or what to fix.\n\n"
        "## Your progress\n\n"
        "Run the cell below to see which checks passed in your last run of each lab (the checks keep a "
        "small record as you run them; `lab-env progress` in a terminal shows the same)."
    )
    nb = nbf.new_notebook()
    nb.cells = [
        nbf.new_markdown_cell(intro, id="overview-intro"),
        nbf.new_code_cell("from lab_env.labs.course import show_progress\n\nshow_progress()", id="overview-progress"),
    ]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def show_progress() -> None:
    from IPython.display import HTML, display

    display(HTML(overview_html()))


def write_package_docstrings() -> list[Path]:
    """Rewrite each lab package's __init__ with its map (after a move: `python -m lab_env.labs.course`)."""
    written = []
    for lab in LABS:
        init = REPO_ROOT / Path(*lab.package.split(".")) / "__init__.py"
        init.write_text('"""' + package_docstring(lab) + '"""\n')
        written.append(init)
    return written


if __name__ == "__main__":
    for path in write_package_docstrings():
        print(f"wrote {path.relative_to(REPO_ROOT)}")
