"""IPython magics the labs use. Load with ``%load_ext lab_env.notebooks.magics``.

``%%app_file NAME.py`` saves the cell as a module in this run's workspace
(a folder unique to the kernel), after checking it compiles, so the agent
apps a lab starts never write into the repo and two runs never share files.
"""

from __future__ import annotations

from pathlib import Path

from IPython.core.magic import register_cell_magic

from ..errors import LabEnvError
from .workspace import workspace


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


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's API
    import sys

    register_cell_magic(app_file)
    # The notebook imports interfaces from the modules it saves.
    sys.path.insert(0, str(workspace()))
