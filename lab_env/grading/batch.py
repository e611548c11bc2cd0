"""Grade a folder of submissions: one row per learner, whatever they handed in.

Layouts: SUBMISSIONS/<learner>.ipynb, or SUBMISSIONS/<learner>/<any>.ipynb
(the notebook named like the lab is preferred when there are several).
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from ..errors import LabEnvError
from ..notebooks.generate import SOLUTIONS_DIR
from .report import summary_table, write_feedback, write_gradebook, write_junit
from .run import Graded, grade_notebook, identify_lab
from .spec import LabSpec, load_spec


@dataclass
class Submission:
    learner: str
    path: Path | None
    problem: str = ""


def find_submissions(folder: Path, spec: LabSpec) -> list[Submission]:
    if not folder.is_dir():
        raise LabEnvError(f"{folder} is not a folder", "pass the folder that holds the submissions")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            notebooks = sorted(entry.rglob("*.ipynb"))
            notebooks = [p for p in notebooks if ".ipynb_checkpoints" not in p.parts]
            if not notebooks:
                found.append(Submission(entry.name, None, "no notebook handed in"))
                continue
            preferred = [p for p in notebooks if p.name.startswith(spec.number)]
            found.append(Submission(entry.name, (preferred or notebooks)[0]))
        elif entry.suffix == ".ipynb":
            found.append(Submission(entry.stem, entry))
        else:
            found.append(Submission(entry.stem, None, f"{entry.name} is not a notebook (.ipynb)"))
    return found


def _read(sub: Submission, spec: LabSpec, specs: dict[str, LabSpec]) -> nbformat.NotebookNode | str:
    """The notebook, or the reason it cannot be graded."""
    if sub.path is None:
        return sub.problem
    try:
        nb = nbformat.read(sub.path, as_version=4)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        return "corrupt notebook: not valid JSON"
    except Exception:  # any other parse failure is the learner's file, not ours
        return "corrupt notebook: not a Jupyter notebook"
    if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
        return "empty notebook"
    lab = identify_lab(nb, specs)
    if lab is None:
        return f"not a notebook of lab {spec.lab}"
    if lab != spec.lab:
        return f"wrong lab: this is {lab}, expected {spec.lab}"
    return nb


def grade_folder(
    folder: Path, lab: str, out: Path | None = None, jobs: int = 1, cell_timeout: int = 600,
    timeout: int = 1800, progress: bool = True,
) -> tuple[list[Graded], Path]:
    from ..stack.lifecycle import ensure_up

    spec = load_spec(lab)
    specs = {p.stem: load_spec(p.stem) for p in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))}
    out = out or folder.parent / f"grades-{spec.lab}"
    submissions = find_submissions(folder, spec)
    if not submissions:
        raise LabEnvError(f"no submissions in {folder}", "put one notebook (or folder) per learner there")
    ensure_up()
    work = Path(tempfile.mkdtemp(prefix=f"lab-env-grade-{spec.number}-"))

    def grade_one(sub: Submission) -> Graded:
        nb = _read(sub, spec, specs)
        if isinstance(nb, str):
            return Graded(sub.learner, spec.lab, "not graded", nb)
        try:
            return grade_notebook(sub.learner, nb, spec, work / sub.learner, cell_timeout, timeout)
        except Exception as err:  # one broken submission must not stop the batch
            return Graded(sub.learner, spec.lab, "not graded", f"grading failed: {type(err).__name__}: {err}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(tqdm(pool.map(grade_one, submissions), total=len(submissions),
                            desc=f"grading lab {spec.number}", unit="notebook", disable=not progress))
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(results, spec, out / "gradebook.csv")
    write_junit(results, spec, out / "junit.xml")
    write_feedback(results, spec, out / "feedback")
    (out / "summary.txt").write_text(summary_table(results, spec) + "\n")
    logs = out / "logs"  # the worker's log per learner: what ran, how long each cell and check took
    logs.mkdir(exist_ok=True)
    for sub in submissions:
        log = work / sub.learner / "worker.log"
        if log.exists():
            shutil.copy(log, logs / f"{sub.learner}.log")
    shutil.rmtree(work, ignore_errors=True)
    return results, out
