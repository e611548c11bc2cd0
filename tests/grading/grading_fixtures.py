"""Lab 01 submissions for the grading tests, made from the solution at test
time so they follow it when it changes.

``CHEATS`` are what a learner who wants marks without the work might try,
each added to the unsolved lab. ``in_region`` cheats go inside an exercise
region (the learner's own answer, which the grader does run); ``slips_past``
ones are written to get past the static screen, so they prove that the
verdicts themselves cannot be forged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import nbformat

from lab_env.grading.generate import LABS_DIR, strip_solutions, student_version
from lab_env.grading.spec import load_spec

SPEC = load_spec("01")
APP_CELL_MARK = "%%app_file marketplace_actors.py"
REGION_CELL_MARK = "async def reserve_concurrently"
ACTIVATE_CELL_MARK = "def activation_call"


def solution() -> nbformat.NotebookNode:
    nb = nbformat.read(SPEC.solution, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def unsolved() -> nbformat.NotebookNode:
    return nbformat.read(LABS_DIR / "01_actors.ipynb", as_version=4)


def cell(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if text in c.source)


def partial() -> nbformat.NotebookNode:
    """handle and restock solved; reserve, the reminder and idle_config not;
    the notebook-level exercises done."""
    nb = student_version(solution(), "01_actors.ipynb")
    cell(nb, APP_CELL_MARK).source = strip_solutions(cell(solution(), APP_CELL_MARK).source, keep=frozenset({0, 1}))
    for marker in (REGION_CELL_MARK, ACTIVATE_CELL_MARK):
        cell(nb, marker).source = cell(solution(), marker).source
    return nb


def tampered() -> nbformat.NotebookNode:
    """The partial notebook with its check cells faked, deleted and shadowed."""
    nb = partial()
    cell(nb, "check.product_stock").source = 'print("\\u2705 ProductActor stock: passed")'
    nb.cells.remove(cell(nb, "check.reminder_outlives_crash"))
    setup = nb.cells.index(cell(nb, "from lab_env.labs.lab01_actors import checks as check"))
    fake = nbformat.v4.new_code_cell(
        "class check:  # always passes\n    def __getattr__(self, n): return lambda *a: None"
    )
    nb.cells.insert(setup + 1, fake)
    return nb


def endless_loop() -> nbformat.NotebookNode:
    """The solution with an endless loop in the scale exercise's answer. It waits rather
    than spins: the grader interrupts either the same way, and a spinning one burnt a
    core for the whole cell limit while the rest of the suite ran beside it."""
    nb = solution()
    target = cell(nb, ACTIVATE_CELL_MARK)
    answer = '    return ("PUT", '
    assert answer in target.source
    target.source = target.source.replace(
        answer, "    import time\n    while True:\n        time.sleep(1)\n" + answer, 1
    )
    return nb


def other_lab() -> nbformat.NotebookNode:
    return nbformat.read(LABS_DIR / "02_pubsub.ipynb", as_version=4)


# --- cheats ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cheat:
    name: str
    apply: Callable[[nbformat.NotebookNode], None]
    note: str | None = None  # what the feedback must say (None: nothing to detect)


def _added_cell(code: str) -> Callable[[nbformat.NotebookNode], None]:
    """The cheat as a cell of its own right after the setup cell."""

    def apply(nb: nbformat.NotebookNode) -> None:
        setup = nb.cells.index(cell(nb, "from lab_env.labs.lab01_actors import checks as check"))
        nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(code))

    return apply


def _in_region(code: str, mark: str = REGION_CELL_MARK) -> Callable[[nbformat.NotebookNode], None]:
    """The cheat inside an answer (before its stub's raise): the grader runs it
    when the answer is called. The unsolved lab calls ``activation_call`` (scale
    exercise) but never reaches ``reserve_concurrently``."""

    def apply(nb: nbformat.NotebookNode) -> None:
        target = cell(nb, mark)
        lines = target.source.split("\n")
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("raise NotImplementedError"))
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        lines[at:at] = [indent + line for line in code.split("\n")]
        target.source = "\n".join(lines)

    return apply


def _runs(code: str) -> Callable[[nbformat.NotebookNode], None]:
    return _in_region(code, ACTIVATE_CELL_MARK)


def _edit_check_cells(nb: nbformat.NotebookNode) -> None:
    for c in nb.cells:
        if "check" in c.metadata.get("lab_env", {}):
            name = c.metadata["lab_env"]["check"]
            c.source = f'print("\\u2705 {name}: passed")'


def _delete_check_cells(nb: nbformat.NotebookNode) -> None:
    nb.cells = [c for c in nb.cells if "check" not in c.metadata.get("lab_env", {})]


def _fake_outputs(nb: nbformat.NotebookNode) -> None:
    for n, c in enumerate(nb.cells):
        if "check" in c.metadata.get("lab_env", {}):
            c.execution_count = n
            c.outputs = [
                nbformat.v4.new_output(
                    "stream", name="stdout", text=f"\u2705 {c.metadata['lab_env']['check']}: passed\n"
                )
            ]


def _ids_and_metadata(nb: nbformat.NotebookNode) -> None:
    for n, c in enumerate(nb.cells):
        c["id"] = f"mine-{n:03d}"
        if "check" in c.metadata.get("lab_env", {}):
            c.metadata["lab_env"]["points"] = 100
            c.metadata["tags"] = ["instructor"]
    nb.metadata["lab_env"] = {"lab": "02_pubsub"}
    nb.metadata["kernelspec"] = {"name": "python2", "display_name": "fake", "language": "python"}


_REBIND = (
    "for name in dir(check):\n    if not name.startswith('_'):\n        setattr(check, name, lambda *a, **k: None)"
)
_SYS_MODULES = (
    "import sys, types\n"
    "sys.modules['lab_env.labs.lab01_actors.checks'] = types.SimpleNamespace(**{n: (lambda *a, **k: None) "
    "for n in dir(sys.modules['lab_env.labs.lab01_actors.checks'])})"
)
_CUSTOM_EXC = "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"
_SHOWTRACEBACK = (
    "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\nip._showtraceback = lambda *a, **k: None\n"
    "ip.showsyntaxerror = lambda *a, **k: None"
)
_BUILTINS = (
    "import builtins\nbuiltins.print = lambda *a, **k: None\nbuiltins.AssertionError = type('Pass', (Exception,), {})"
)
# Written to get past the screen: no flagged name, import or attribute.
_SLIP_SYS = "self = asyncio.sys.modules\n"
# Tells the grader the samples of a finished 10,000-actor run, whatever it asks about.
_SLIP_REMOTE = (
    _SLIP_SYS + "self = self.get('lab_env.grading.remote')\n"
    "samples[:] = [{'actors': n, 'ms_per_call': 1.0, 'rss_mb': 99.0} for n in range(500, 10_500, 500)]\n"
    "fake = lambda value: json.dumps({'kind': 'json', 'value': samples})\n"
    "if self:\n    setattr(self, 'describe', fake)"
)
_SLIP_REBIND = "self = check\nfor name in dir(self):\n    setattr(self, name, lambda *a, **k: None)"
_SLIP_HOOK = (
    _SLIP_SYS + "shell = self['IPython'].get_ipython()\nshell.set_custom_exc((BaseException,), lambda *a, **k: None)"
)
_SLIP_EXIT = _SLIP_SYS + "getattr(self['os'], '_' + 'exit')(0)"
# A kernel cannot restart itself (the frontend does); it can ask to, or kill itself.
_SLIP_RESTART = _SLIP_SYS + "shell = self['IPython'].get_ipython()\nshell.kernel.do_shutdown(True)\nshell.ask_exit()"
_SLIP_KILL = _SLIP_SYS + "getattr(self['os'], 'kill')(getattr(self['os'], 'getpid')(), 9)"

CHEATS = [
    Cheat("edit check cells", _edit_check_cells, "check cells you edited were run as the lab wrote them"),
    Cheat("delete check cells", _delete_check_cells, "check cells missing from your notebook were run all the same"),
    Cheat("rebind check functions (added cell)", _added_cell(_REBIND), "code cell(s) you added were not run"),
    Cheat("rebind check functions (in an answer)", _in_region(_REBIND), "uses setattr on something other than self"),
    Cheat("rebind check functions (slips past the screen)", _runs(_SLIP_REBIND)),
    Cheat("replace the check module in sys.modules", _in_region(_SYS_MODULES), "an answer imports "),
    Cheat("patch the grader's side door (slips past the screen)", _runs("import json\n" + _SLIP_REMOTE)),
    Cheat("IPython set_custom_exc (added cell)", _added_cell(_CUSTOM_EXC), "code cell(s) you added were not run"),
    Cheat("IPython set_custom_exc (in an answer)", _in_region(_CUSTOM_EXC), "uses get_ipython"),
    Cheat("IPython set_custom_exc (slips past the screen)", _runs(_SLIP_HOOK)),
    Cheat("IPython showtraceback family", _in_region(_SHOWTRACEBACK), "uses get_ipython"),
    Cheat("patch builtins and print", _in_region(_BUILTINS), "imports builtins"),
    Cheat("rebind print", _in_region("print = lambda *a, **k: None"), "rebinds print"),
    Cheat("fake pass lines in outputs", _fake_outputs),
    Cheat("change cell ids and notebook metadata", _ids_and_metadata, "most cell ids differ from the lab's"),
    Cheat("os._exit (in an answer)", _in_region("import os\nos._exit(0)"), "calls os._exit"),
    Cheat("os._exit (slips past the screen)", _runs(_SLIP_EXIT), "stopped the notebook's kernel"),
    Cheat("kernel restart request (slips past the screen)", _runs(_SLIP_RESTART)),
    Cheat("kernel kills itself (slips past the screen)", _runs(_SLIP_KILL), "stopped the notebook's kernel"),
]


def _in_app(code: str) -> Callable[[nbformat.NotebookNode], None]:
    """The cheat in the app file's first answer (BaseAgent.handle): it runs in the app's own process
    when a check first calls Handle, where the screen applies only its process rules."""
    return _in_region(code, APP_CELL_MARK)


# Operating-system cheats (issue 31): what only a sandbox stops. The env var whose value the
# environment reader looks for; the test sets it in the grader's own environment.
CANARY = "LAB_ENV_GRADER_CANARY"
_READ_SOLUTION = """import json, pathlib
import lab_env
found = pathlib.Path(lab_env.__file__).resolve().parents[1] / "solutions" / "01_actors.ipynb"
if found.exists():
    cells = ["".join(c["source"]) for c in json.loads(found.read_text())["cells"]]
    source = next(c for c in cells if c.startswith("%%app_file"))
    theirs = {"__name__": "theirs"}
    exec(source.split("\\n", 1)[1], theirs)
    for name in ("BaseAgent", "ProductActor"):
        for key, value in vars(theirs[name]).items():
            if callable(value) and not key.startswith("__"):
                setattr(globals()[name], key, value)
    return await theirs["BaseAgent"].handle(self, message)"""
_READ_ENVIRONMENTS = f"""import os
seen = []
for pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{{pid}}/environ", "rb") as f:
            seen += [v.decode() for v in f.read().split(b"\\0") if v.startswith(b"{CANARY}=")]
    except OSError:
        continue
if seen:
    return {{"handled": seen}}"""
_KILL_GRADERS = """import os
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"lab_env.grading.worker" in f.read():
                getattr(os, "ki" + "ll")(int(pid), 9)
    except OSError:
        continue"""
_WRITE_OTHERS = """import glob, os, tempfile
for path in glob.glob(os.path.join(tempfile.gettempdir(), "lab-env-grade-*", "*", "*")):
    if path.endswith(("results.json", "graded.ipynb")):
        try:
            with open(path, "w") as f:
                f.write("{}")
        except OSError:
            continue"""
OS_CHEATS = [
    Cheat("read the solution notebook on the grading machine (app answer)", _in_app(_READ_SOLUTION)),
    Cheat("read the grader's environment through /proc (app answer)", _in_app(_READ_ENVIRONMENTS)),
    Cheat("kill the grader's workers (app answer)", _in_app(_KILL_GRADERS)),
    Cheat("write into other submissions' files (app answer)", _in_app(_WRITE_OTHERS)),
]


def cheat_notebook(cheat: Cheat) -> nbformat.NotebookNode:
    nb = copy.deepcopy(unsolved())
    cheat.apply(nb)
    return nb


def learner_name(cheat: Cheat) -> str:
    return "cheat-" + "".join(ch if ch.isalnum() else "-" for ch in cheat.name.lower()).strip("-")


def corrupt_json() -> str:
    return '{"cells": [ this is not json'


__all__ = [
    "CANARY",
    "CHEATS",
    "OS_CHEATS",
    "SPEC",
    "Cheat",
    "cheat_notebook",
    "corrupt_json",
    "endless_loop",
    "learner_name",
    "other_lab",
    "partial",
    "solution",
    "tampered",
    "unsolved",
]
