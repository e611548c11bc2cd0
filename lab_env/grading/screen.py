"""Static screening of a learner's answers before they run.

A second line of defence, and the source of the feedback's reasons: the
verdicts do not depend on it (they are computed outside the learner's
kernel, see worker.py), so an answer that slips past it gains nothing. An
answer it flags is graded as not done, with the reason.

Code in the graded kernel gets every rule. Code saved by %%app_file runs in
its own app process, where none of the kernel tricks apply, so only the
process-level rules (killing processes, spawning shells, importing the
grader) are used there, to keep false alarms away from real answers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Modules that reach into the interpreter, the kernel or the grader.
_KERNEL_MODULES = {
    "builtins": "the interpreter's built-ins",
    "sys": "the interpreter (sys)",
    "importlib": "the import system",
    "IPython": "the IPython kernel",
    "ipykernel": "the IPython kernel",
    "jupyter_client": "the Jupyter kernel",
    "ctypes": "raw memory",
    "gc": "the garbage collector's object graph",
    "inspect": "stack frames",
    "types": "hand-made modules",
    "atexit": "exit hooks",
    "unittest": "mocks",
    "pytest": "the test runner",
    "nbformat": "notebooks",
    "nbclient": "notebook execution",
    "nbval": "the test runner",
    "code": "nested interpreters",
    "marshal": "code objects",
    "traceback": "tracebacks",
    "faulthandler": "the interpreter",
}
_PROCESS_MODULES = {
    "subprocess": "running other programs",
    "signal": "signals",
    "pty": "terminals",
    "multiprocessing": "other processes",
    "psutil": "other processes",
    "lab_env.checks": "the lab's checks",
    "lab_env.labs.checks": "the lab's checks",
    "lab_env.grading": "the grader",
    "lab_env.models.candidates": "the candidates' answer key",
    "lab_env.core.registry": "other processes' records",
}
_KERNEL_NAMES = {
    "get_ipython": "the IPython kernel",
    "__import__": "the import system",
    "__builtins__": "the interpreter's built-ins",
    "exec": "running generated code",
    "eval": "running generated code",
    "compile": "running generated code",
    "globals": "the notebook's namespace",
    "locals": "the notebook's namespace",
    "vars": "the notebook's namespace",
    "breakpoint": "the debugger",
    "exit": "stopping the kernel",
    "quit": "stopping the kernel",
    "delattr": "removing attributes",
}
_REBOUND = {
    "print",
    "isinstance",
    "getattr",
    "setattr",
    "hasattr",
    "check",
    "Exception",
    "BaseException",
    "AssertionError",
    "NotImplementedError",
    "KeyboardInterrupt",
    "SystemExit",
}
_OS_CALLS = {
    "_exit",
    "kill",
    "killpg",
    "abort",
    "system",
    "popen",
    "fork",
    "forkpty",
    "execv",
    "execve",
    "execvp",
    "execl",
    "execlp",
    "spawnv",
    "spawnl",
    "posix_spawn",
    "setsid",
}
# Attributes that lead to frames, code objects, namespaces or class internals.
_DUNDERS = {
    "__globals__",
    "__code__",
    "__subclasses__",
    "__bases__",
    "__base__",
    "__mro__",
    "__dict__",
    "__builtins__",
    "__closure__",
    "__func__",
    "__self__",
    "__wrapped__",
    "__loader__",
    "__spec__",
    "__class__",
    "__getattribute__",
    "__setattr__",
    "__import__",
    "__reduce__",
    "__reduce_ex__",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "gi_frame",
    "cr_frame",
    "ag_frame",
    "tb_frame",
}


@dataclass(frozen=True)
class Finding:
    line: int  # 1-based, in the screened source
    reason: str


def screen(source: str, in_kernel: bool) -> list[Finding]:
    """What in ``source`` (Python) a graded answer may not do. Unparsable code
    is not screened: it cannot run either."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: list[Finding] = []
    modules = {**_PROCESS_MODULES, **(_KERNEL_MODULES if in_kernel else {})}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lab_env":
                names += [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                for module, what in modules.items():
                    if name == module or name.startswith(module + "."):
                        found.append(Finding(line, f"imports {module} ({what})"))
                if name.startswith("lab_env.labs.") and name.endswith(".checks"):
                    found.append(Finding(line, f"imports {name} (the lab's checks)"))
            if in_kernel and any((a.asname or a.name) in _REBOUND for a in node.names):
                found.append(Finding(line, "rebinds a name the checks rely on"))
        elif isinstance(node, ast.Attribute):
            if node.attr in _DUNDERS:
                found.append(Finding(line, f"reaches into {node.attr} (interpreter internals)"))
            elif isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in _OS_CALLS:
                found.append(Finding(line, f"calls os.{node.attr} (processes)"))
            elif in_kernel and isinstance(node.value, ast.Name) and node.value.id == "check":
                if not isinstance(node.ctx, ast.Load):
                    found.append(Finding(line, "changes the check module"))
        elif isinstance(node, ast.Name) and in_kernel:
            if node.id in _KERNEL_NAMES:
                found.append(Finding(line, f"uses {node.id} ({_KERNEL_NAMES[node.id]})"))
            elif node.id in _REBOUND and not isinstance(node.ctx, ast.Load):
                found.append(Finding(line, f"rebinds {node.id}"))
        elif in_kernel and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in _REBOUND:
                found.append(Finding(line, f"rebinds {node.name}"))
        elif in_kernel and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            target = node.args[0] if node.args else None
            if not (isinstance(target, ast.Name) and target.id == "self"):
                found.append(Finding(line, "uses setattr on something other than self"))
    return sorted(set(found), key=lambda f: (f.line, f.reason))


def kernel_python(cell_source: str) -> str:
    """The Python the kernel runs for a cell: IPython's %magics and !shell lines
    become calls to get_ipython(), line for line, as the kernel would make them."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(cell_source)
    except SyntaxError:
        return cell_source
