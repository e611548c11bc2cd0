"""How the graded notebook is assembled and screened, and how verdicts are
signed (pure logic: no stack, no kernel)."""

from __future__ import annotations

import json

import nbformat
import pytest

from lab_env.grading.assemble import ROLE, assemble
from lab_env.grading.generate import LABS_DIR, SOLUTIONS_DIR
from lab_env.grading.screen import kernel_python, screen
from lab_env.grading.signing import sign, verify
from lab_env.grading.spec import load_spec

SPEC = load_spec("01")
LAB_IDS = sorted(p.stem[:2] for p in SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _lab() -> nbformat.NotebookNode:
    return nbformat.read(LABS_DIR / "01_actors.ipynb", as_version=4)


def _graded_cell(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if text in c.source)


def _answer(lab: nbformat.NotebookNode, mark: str, answer: str, around=lambda s: s) -> None:
    cell = _graded_cell(lab, mark)
    lines = cell.source.split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("raise NotImplementedError"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    start = max(i for i in range(at) if lines[i].strip() == "# YOUR CODE HERE")
    lines[start : at + 1] = [indent + line for line in answer.split("\n")]  # the whole stub
    cell.source = around("\n".join(lines))


@pytest.mark.parametrize("lab", LAB_IDS)
def test_the_solution_assembles_to_itself_with_no_notes(lab):
    spec = load_spec(lab)
    solved = nbformat.read(spec.solution, as_version=4)
    graded = assemble(solved, spec)
    assert graded.notes == []
    for mine, theirs in zip(graded.notebook.cells, solved.cells, strict=True):
        replace = theirs.metadata.get("lab_env", {}).get("grading_replace", {})
        if mine.metadata.get(ROLE, {}).get("role") == "exercise":
            # The solution's answers keep its marker comments; the rest is the solution's text.
            assert mine.source == "\n".join(replace.get(line, line) for line in theirs.source.split("\n"))


@pytest.mark.parametrize("lab", LAB_IDS)
def test_the_screen_never_flags_a_solution(lab):
    """A false alarm would cost correct work its points. (The screen sees the
    answers only: the instructor's own lines are never screened.)"""
    spec = load_spec(lab)
    flagged = [n for n in assemble(nbformat.read(spec.solution, as_version=4), spec).notes if "may not do" in n]
    assert flagged == []


def test_the_hints_a_notebook_shows_reach_the_feedback_and_an_optional_deduction():
    from lab_env.grading.report import feedback_markdown
    from lab_env.grading.run import Graded, with_hints

    lab = _lab()
    asked = nbformat.v4.new_code_cell('hint("01", 5)\nhint("01", 5)\nhint("01", 6)')
    asked.outputs = [
        nbformat.v4.new_output(
            "stream", name="stdout", text='Hint 2 of 3 (hint("01", 5); hint("01", 5) again):\n  x\n'
        ),
        nbformat.v4.new_output("stream", name="stdout", text='Hint 3 of 3 (hint("01", 5), the last one):\n  y\n'),
        nbformat.v4.new_output("stream", name="stdout", text='Hint 2 of 3 (hint("01", 6); hint("01", 6) again):\n'),
        nbformat.v4.new_output("stream", name="stdout", text='Hint 1 of 1 (hint("01", 7), the last one):\n  z\n'),
        nbformat.v4.new_output("stream", name="stdout", text='Hint 3 of 3 (hint("02", 1), the last one):\n'),
    ]
    lab.cells.append(asked)
    assembly = assemble(lab, SPEC)
    assert assembly.hints == {5: (3, 3), 6: (2, 3), 7: (1, 1)}  # another lab's line is not this lab's
    graded = Graded("ada", SPEC.lab, "graded")
    assert with_hints(graded, assembly, 0).deducted == 0
    docked = with_hints(graded, assembly, 1)  # a one-level hint repeats the stub's: no deduction for 7
    assert docked.deducted == 1 and docked.total == 0  # never below zero
    text = feedback_markdown(docked, SPEC)
    assert '`hint("01", 5)` to level 3 of 3 (the last); `hint("01", 6)` to level 2 of 3' in text
    assert "1 point(s) off" in text


def test_an_answer_goes_in_its_region_and_other_edits_are_undone():
    lab = _lab()
    answer = (
        "proxy = ActorProxy.create(PRODUCT, ActorId(product_id), ProductInterface)\nreturn [await proxy.Reserve(1)]"
    )
    _answer(
        lab,
        "async def reserve_concurrently",
        answer,
        around=lambda s: "import math  # mine\n" + s.replace("CALLS = 100", "CALLS = 3"),
    )
    graded = assemble(lab, SPEC)
    cell = _graded_cell(graded.notebook, "async def reserve_concurrently")
    assert "    return [await proxy.Reserve(1)]" in cell.source
    assert "import math  # mine" in cell.source  # an added import stays
    assert "CALLS = 100" in cell.source and "CALLS = 3" not in cell.source
    assert any("changes outside the exercise regions were undone ('CALLS = 3')" in n for n in graded.notes)


def test_a_flagged_answer_is_graded_as_not_done_with_the_reason():
    lab = _lab()
    _answer(lab, "async def reserve_concurrently", "get_ipython().set_custom_exc((Exception,), print)\nreturn []")
    graded = assemble(lab, SPEC)
    cell = _graded_cell(graded.notebook, "async def reserve_concurrently")
    assert "set_custom_exc" not in cell.source and "raise NotImplementedError" in cell.source
    assert any("uses get_ipython (the IPython kernel)" in n for n in graded.notes)


def test_the_declared_grading_size_replaces_the_instructors_line_only():
    graded = assemble(_lab(), SPEC)
    cell = _graded_cell(graded.notebook, "def activation_call")
    assert "TOTAL, BATCH = 2_000, 250" in cell.source and "10_000" not in cell.source


def test_magic_first_lines_cannot_be_changed():
    lab = _lab()
    cell = _graded_cell(lab, "%%app_file marketplace_actors.py")
    cell.source = cell.source.replace("%%app_file marketplace_actors.py", "%%bash")
    graded = assemble(lab, SPEC)
    assert _graded_cell(graded.notebook, "Marketplace agents as Dapr").source.startswith(
        "%%app_file marketplace_actors.py\n"
    )


@pytest.mark.parametrize(
    "code, in_kernel, reason",
    [
        ("import sys\nsys.modules['x'] = 1", True, "imports sys"),
        ("from lab_env import checks", False, "imports lab_env.checks"),
        ("from lab_env.labs.lab01_actors import checks", False, "imports lab_env.labs.lab01_actors.checks"),
        ("import lab_env.labs.checks", False, "imports lab_env.labs.checks"),
        ("import lab_env.grading.remote as r", True, "imports lab_env.grading"),
        ("check.scale = print", True, "changes the check module"),
        ("del check", True, "rebinds check"),
        ("print = str", True, "rebinds print"),
        ("exec('1')", True, "uses exec"),
        ("x = (1).__class__.__base__.__subclasses__()", True, "__subclasses__"),
        ("import os\nos._exit(0)", False, "calls os._exit"),
        ("import subprocess", False, "imports subprocess"),
        ("!rm -rf /", True, "uses get_ipython"),
        ("setattr(check, 'scale', print)", True, "setattr on something other than self"),
        ("from lab_env.models.candidates import SPECIFICATIONS", True, "imports lab_env.models.candidates"),
        ("from lab_env.core import registry", True, "imports lab_env.core.registry"),
    ],
)
def test_the_screen_flags(code, in_kernel, reason):
    source = kernel_python(code) if in_kernel else code
    assert any(reason in f.reason for f in screen(source, in_kernel)), screen(source, in_kernel)


def test_the_graded_kernel_gets_no_model_key():
    from lab_env.grading.worker import kernel_env

    env = kernel_env({"PATH": "/bin", "OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://h/v1"})
    assert env == {"PATH": "/bin", "MPLBACKEND": "agg", "LAB_ENV_GRADING": "1"}


def test_app_code_is_not_held_to_kernel_rules():
    assert screen("import sys\nprint = print\nsetattr(app, 'x', 1)", in_kernel=False) == []


def test_results_are_signed_and_a_forged_file_is_refused():
    key = b"k" * 32
    signed = sign({"checks": {"scale": {"passed": False}}}, key)
    assert verify(signed, key) == {"checks": {"scale": {"passed": False}}}
    forged = {**signed, "payload": json.dumps({"checks": {"scale": {"passed": True}}}, sort_keys=True)}
    assert verify(forged, key) is None
    assert verify(signed, b"x" * 32) is None


def _bound_and_loaded(source: str) -> tuple[set[str], set[str]]:
    """Names a kernel cell binds and names it reads (IPython magic lines left out)."""
    import ast

    if source.lstrip().startswith("%%"):
        return set(), set()  # a cell magic (%%app_file writes a file; it binds nothing in the kernel)
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    tree = compile(code, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    bound, loaded = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound, loaded


def demo_leaks(notebook: nbformat.NotebookNode) -> dict[str, list[int]]:
    """Names bound only by demonstration cells (which the grader does not run) that a later cell it runs reads:
    name -> the indices of those cells."""
    code = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    is_demo = {i: bool(c.metadata.get("lab_env", {}).get("demo")) for i, c in code}
    names = {i: _bound_and_loaded(c.source) for i, c in code}
    only_demo = set().union(*(names[i][0] for i in names if is_demo[i])) - set().union(
        *(names[i][0] for i in names if not is_demo[i])
    )
    first_demo = min((i for i in names if is_demo[i]), default=len(notebook.cells))
    leaks: dict[str, list[int]] = {}
    for i in names:
        if not is_demo[i] and i > first_demo:
            for name in names[i][1] & only_demo:
                leaks.setdefault(name, []).append(i)
    return leaks


@pytest.mark.parametrize("lab", LAB_IDS)
def test_demonstration_cells_are_not_run_and_nothing_later_needs_them(lab):
    spec = load_spec(lab)
    solution = nbformat.read(spec.solution, as_version=4)
    assert demo_leaks(solution) == {}, "a cell the grader runs reads a name only a demonstration cell binds"
    demos = sum(1 for c in solution.cells if c.metadata.get("lab_env", {}).get("demo"))
    graded = assemble(solution, spec).notebook
    assert sum(1 for c in graded.cells if c.metadata.get(ROLE, {}).get("role") == "demo") == demos


def test_the_leak_check_sees_a_demonstration_cell_that_a_later_cell_needs():
    solution = nbformat.read(load_spec("01").solution, as_version=4)
    start = next(c for c in solution.cells if c.source.startswith("IDLE_SECONDS = 4"))  # binds `market`
    start.metadata.setdefault("lab_env", {})["demo"] = True
    assert "market" in demo_leaks(solution)
