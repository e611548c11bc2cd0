"""IPython magics the labs use. Load with ``%load_ext lab_env.notebooks.magics``.

``%%app_file NAME.py`` saves the cell as a module in this run's workspace
(a folder unique to the kernel), after checking it compiles, so the agent
apps a lab starts never write into the repo and two runs never share files.

``%%resource_file NAME.yaml`` does the same for a Dapr resource (a
declarative Subscription, say) to pass to ``start_app(resources=[...])``.
``$NAME`` and ``${NAME}`` are replaced by the notebook variable of that name
(per-run topics and app ids); ``$$`` is a literal ``$``. The file is checked
with ``load_resource``. A cell still holding an exercise stub raises
NotImplementedError, like unfinished Python, and saves nothing.

Loading the extension also makes errors from learners' apps show as one
line (lab_env.notebooks.tracebacks), and defines ``hint(lab, exercise)``
(lab_env.labs.hints).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from string import Template

from IPython.core.magic import register_cell_magic

from lab_env.errors import LabEnvError
from lab_env.notebooks.workspace import workspace
from lab_env.stack.components import load_resource

# The line lab-env build-labs writes in place of a solution (see generate.py).
_STUB = re.compile(r"^\s*raise NotImplementedError\((?P<arg>.*)\)\s*$", re.M)


def app_file(line: str, cell: str) -> None:
    name = line.strip()
    if not name.endswith(".py") or "/" in name:
        raise LabEnvError(f"%%app_file needs a module file name like agents.py, got {name!r}")
    try:
        compile(cell, name, "exec")
    except SyntaxError as err:
        raise LabEnvError(f"{name} line {err.lineno}: {err.msg}", "fix the syntax error in this cell") from None
    path: Path = workspace() / name
    path.write_text(cell)
    print(f"saved {name} to the lab workspace")


def resource_file(line: str, cell: str) -> None:
    name = line.strip()
    if not name.endswith((".yaml", ".yml")) or "/" in name:
        raise LabEnvError(f"%%resource_file needs a file name like orders.yaml, got {name!r}")
    path: Path = workspace() / name
    path.unlink(missing_ok=True)  # if this cell fails, no older version stands in for it
    stub = _STUB.search(cell)
    if stub:
        raise NotImplementedError(_stub_message(stub["arg"]))
    path.write_text(_expand(cell, name))
    try:
        doc = load_resource(path)
    except LabEnvError as err:
        path.unlink()
        raise LabEnvError(err.problem, "fix this cell and run it again") from None
    print(f"saved {name} ({doc['kind']} {doc['metadata']['name']}) to the lab workspace")


def _stub_message(arg: str) -> str:
    try:
        return str(ast.literal_eval(arg))
    except (ValueError, SyntaxError):
        return "exercise not done yet"


def _expand(text: str, name: str) -> str:
    """Replace $NAME / ${NAME} with the notebook's variables."""
    from IPython import get_ipython

    shell = get_ipython()
    names = shell.user_ns if shell is not None else {}
    try:
        return Template(text).substitute(names)
    except KeyError as err:
        raise LabEnvError(
            f"{name}: ${{{err.args[0]}}} is not defined in this notebook",
            "define it in a cell above, or write $$ for a literal $",
        ) from None
    except ValueError as err:
        raise LabEnvError(f"{name}: {err}", "write $$ for a literal $") from None


def load_ipython_extension(ipython) -> None:
    import sys

    register_cell_magic(app_file)
    register_cell_magic(resource_file)
    # hint("01", 3): each stub's "Stuck?" line names the call that shows its next hint.
    from lab_env.labs.hints import hint

    ipython.push({"hint": hint})
    # The notebook imports interfaces from the modules it saves.
    sys.path.insert(0, str(workspace()))
    # Dapr SDK and connection errors from learners' apps show as one line (%tb has the rest).
    from lab_env.notebooks.tracebacks import install

    install(ipython)
