"""A copy of the course for learners: everything they run, without the solutions.

    lab-env release ../course-2027

Copies the repository's tracked files (``git ls-files``) except the
instructor's: ``solutions/`` (the only place the answers are written), and the
test suite, benches and CI scripts, which read the solutions. ``labs/`` (the
generated student notebooks and their hints), ``lab_env/``, the Dapr
components and both devcontainer folders go as they are, with a RELEASE.md
saying what was left out.

What it does not hide: a few answers are also lab_env's reference
implementations, which other parts of the course run (``answers_in`` finds
them; tests/grading/test_release.py lists them), and a hint's last level may
show code, by design.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lab_env.core.paths import REPO_ROOT
from lab_env.errors import LabEnvError

LEFT_OUT = ("solutions/", "tests/", "bench/", ".ci/", "test-artifacts/")

NOTE = """# This is the learners' copy of the course

Made by `lab-env release` from commit {commit}. It holds the labs (`labs/`),
the helper package (`lab_env/`), the Dapr components and the devcontainer:
`make lab` sets everything up and opens JupyterLab, as in the full repository.

Left out, because they are the instructor's: the solution notebooks
(`solutions/`), the test suite, the benches and the CI scripts. `make test`
and `lab-env build-labs` need them and do not work here; grading
(`lab-env grade`) runs from the full repository.
"""


def tracked_files(root: Path = REPO_ROOT) -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        problem = f"cannot list the repository's files: {err}"
        raise LabEnvError(problem, "run it from a git clone of the course") from None
    return [f for f in listed.stdout.decode().split("\0") if f]


def release(out: Path, root: Path = REPO_ROOT) -> list[str]:
    """Write the learners' copy into ``out`` (a new or empty folder); the files copied."""
    if out.exists() and any(out.iterdir()):
        raise LabEnvError(f"{out} is not empty", "choose a new folder for the release")
    if out.resolve().is_relative_to(root.resolve()):
        raise LabEnvError(f"{out} is inside the repository", "choose a folder outside it")
    kept = [f for f in tracked_files(root) if not f.startswith(LEFT_OUT) and (root / f).is_file()]
    for name in kept:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    (out / "RELEASE.md").write_text(NOTE.format(commit=commit.stdout.strip() or "?"))
    return kept


def answers_in(folder: Path) -> list[tuple[str, int, str]]:
    """(lab, stub number, file) for each solution region whose code (whitespace aside) is in a file of
    ``folder``; labs/hints.json aside, whose last levels may show code on purpose."""
    import nbformat

    from lab_env.grading.generate import INSTRUCTOR_TAG, SOLUTIONS_DIR, parse_regions

    texts = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.relative_to(folder).as_posix() != "labs/hints.json":
            try:
                texts[path.relative_to(folder).as_posix()] = "".join(path.read_text().split())
            except (UnicodeDecodeError, OSError):
                continue
    found = []
    for notebook in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb")):
        number = 0
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type != "code" or INSTRUCTOR_TAG in cell.metadata.get("tags", []):
                continue
            for segment in parse_regions(cell.source):
                if segment.stub is None:
                    continue
                number += 1
                code = "".join("\n".join(segment.lines).split())
                found += [(notebook.name[:2], number, name) for name, text in texts.items() if code and code in text]
    return found
