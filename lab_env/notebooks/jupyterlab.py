"""JupyterLab set up for the course: the command `lab-env lab` (and so
`make lab`) runs, shared with the browser test so both start it one way.

- it listens on 127.0.0.1 only and keeps its token (JUPYTER_TOKEN, if set,
  chooses it: the browser test does);
- it opens on the course overview, in the labs folder;
- the course's settings (repo folder jupyter/, added to Jupyter's config
  path) switch off the "get Jupyter news?" prompt and the update check.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from lab_env.core.paths import REPO_ROOT
from lab_env.labs.course import OVERVIEW_NAME

CONFIG_DIR = REPO_ROOT / "jupyter"
START_PAGE = f"labs/{OVERVIEW_NAME}"


def lab_command(port: int | None = None, root_dir: Path = REPO_ROOT) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the course's JupyterLab server (serving ``root_dir``, the repo)."""
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter") or "jupyter"
    argv = [
        jupyter,
        "lab",
        "--ip",
        "127.0.0.1",
        "--no-browser",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.default_url=/lab/tree/{START_PAGE}",
    ]
    if port:
        argv += ["--port", str(port)]
    if os.geteuid() == 0:  # containers and CI machines often run as root
        argv.append("--allow-root")
    env = dict(os.environ)
    extra = env.get("JUPYTER_CONFIG_PATH")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(CONFIG_DIR), *([extra] if extra else [])])
    return argv, env
