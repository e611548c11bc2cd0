"""Grade a folder of submissions: one row per learner, whatever they handed in.

Layouts: SUBMISSIONS/<learner>.ipynb, or SUBMISSIONS/<learner>/<any>.ipynb
(the notebook named like the lab is preferred when there are several).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from lab_env.errors import LabEnvError
from lab_env.grading.assemble import Assembly, assemble
from lab_env.grading.generate import SOLUTIONS_DIR
from lab_env.grading.report import summary_table, write_feedback, write_gradebook, write_hints, write_junit
from lab_env.grading.run import Graded, grade_assembly, identify_lab, with_hints
from lab_env.grading.sandbox import PORT_SLICES, lease_slot
from lab_env.grading.sandbox import choose as sandbox_engine
from lab_env.grading.spec import LabSpec, load_spec


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
    folder: Path,
    lab: str,
    out: Path | None = None,
    jobs: int = 1,
    cell_timeout: int = 600,
    timeout: int = 1800,
    progress: bool = True,
    regrade_identical: bool = False,
    deduct_last_hint: int = 0,
    sandbox: str = "auto",
) -> tuple[list[Graded], Path]:
    """Grade every submission in folder. Submissions whose graded notebooks are
    identical (the untouched lab handed in twice, an edit the grader undoes) run
    once and share the verdicts, unless regrade_identical (a load test, a bench)."""
    from lab_env.stack.lifecycle import ensure_up

    spec = load_spec(lab)
    specs = {p.stem: load_spec(p.stem) for p in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))}
    out = out or folder.parent / f"grades-{spec.lab}"
    submissions = find_submissions(folder, spec)
    if not submissions:
        raise LabEnvError(f"no submissions in {folder}", "put one notebook (or folder) per learner there")
    ensure_up()
    engine, unsandboxed = sandbox_engine(sandbox, spec.lab)  # auto: where one answers on this machine
    if engine is not None and jobs > PORT_SLICES:  # each sandbox side by side needs a port slice of its own
        print(f"grading {PORT_SLICES} submissions at a time, not {jobs}: sandboxes have {PORT_SLICES} port slices")
        jobs = PORT_SLICES
    work = Path(tempfile.mkdtemp(prefix=f"lab-env-grade-{spec.number}-"))

    prepared = {sub.learner: _prepare(sub, spec, specs) for sub in submissions}
    # The submissions that assembled (the others are a reason, a str, not graded).
    assemblies = {learner: item for learner, item in prepared.items() if isinstance(item, Assembly)}
    runs: dict[str, list[str]] = {}  # the graded notebook's digest -> its learners, the first one runs it
    for learner, assembly in assemblies.items():
        key = learner if regrade_identical else _digest(assembly)
        runs.setdefault(key, []).append(learner)

    def grade_one(learner: str) -> Graded:
        # A sandbox's slot is leased machine-wide, here (so a wait for one shows and costs the
        # grading no time) and held by its worker too (run.py), which outlives its sandbox.
        with lease_slot() if engine is not None else contextlib.nullcontext(None) as slot:
            try:
                return grade_assembly(
                    learner, assemblies[learner], spec, work / learner, cell_timeout, timeout, engine, unsandboxed, slot
                )
            except Exception as err:  # one broken submission must not stop the batch
                return Graded(learner, spec.lab, "not graded", f"grading failed: {type(err).__name__}: {err}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        firsts = [learners[0] for learners in runs.values()]
        graded = dict(
            zip(
                firsts,
                tqdm(
                    pool.map(grade_one, firsts),
                    total=len(firsts),
                    desc=f"grading lab {spec.number}",
                    unit="notebook",
                    disable=not progress,
                ),
                strict=True,
            )
        )
        # A run that did not end well (a crash, a kill, a failure of the grader) is nobody's
        # verdict to share: the rest of its group is graded each on its own.
        again = [other for learners in runs.values() if not graded[learners[0]].finished for other in learners[1:]]
        for key in [k for k, learners in runs.items() if not graded[learners[0]].finished]:
            runs.update({other: [other] for other in runs[key][1:]})
            runs[key] = runs[key][:1]
        graded.update(zip(again, pool.map(grade_one, again), strict=True))
    results = []
    for sub in submissions:
        item = prepared[sub.learner]
        if isinstance(item, str):
            results.append(Graded(sub.learner, spec.lab, "not graded", item))
            continue
        first = next(learners[0] for learners in runs.values() if sub.learner in learners)
        own = graded[first] if first == sub.learner else _shared(graded[first], assemblies[first], sub.learner, item)
        results.append(with_hints(own, item, deduct_last_hint))
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(results, spec, out / "gradebook.csv")
    write_junit(results, spec, out / "junit.xml")
    write_hints(results, spec, out / "hints.csv")
    write_feedback(results, spec, out / "feedback")
    (out / "summary.txt").write_text(summary_table(results, spec) + "\n")
    logs = out / "logs"  # the worker's log per learner: what ran, how long each cell and check took
    logs.mkdir(exist_ok=True)
    for learners in runs.values():
        log = work / learners[0] / "worker.log"
        if not log.exists():
            continue
        shutil.copy(log, logs / f"{learners[0]}.log")
        if (work / learners[0] / "sandbox-logs").is_dir():  # its apps' logs, kept when its sandbox went
            shutil.copytree(work / learners[0] / "sandbox-logs", logs / f"{learners[0]}-apps", dirs_exist_ok=True)
        for other in learners[1:]:
            (logs / f"{other}.log").write_text(
                f"{SHARED_RUN}, {learners[0]}'s (graded once for "
                f"{len(learners)} submissions); that run's log:\n" + log.read_text()
            )
    shutil.rmtree(work, ignore_errors=True)
    return results, out


SHARED_RUN = "the graded notebook is identical to another submission's"


def _prepare(sub: Submission, spec: LabSpec, specs: dict[str, LabSpec]) -> Assembly | str:
    """What the grader will run for this submission, or why it cannot be graded."""
    nb = _read(sub, spec, specs)
    if isinstance(nb, str):
        return nb
    try:
        return assemble(nb, spec)
    except Exception as err:  # one broken submission must not stop the batch
        return f"grading failed: {type(err).__name__}: {err}"


def _digest(assembly: Assembly) -> str:
    return hashlib.sha256(nbformat.writes(assembly.notebook).encode()).hexdigest()


def _shared(graded: Graded, first: Assembly, learner: str, assembly: Assembly) -> Graded:
    """The first submission's verdicts for an identical graded notebook, with this learner's own notes."""
    run_notes = [
        n.replace(f"logs/{graded.learner}.log", f"logs/{learner}.log") for n in graded.notes[len(first.notes) :]
    ]
    return replace(graded, learner=learner, checks=list(graded.checks), notes=[*assembly.notes, *run_notes])
