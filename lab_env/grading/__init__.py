"""The instructor's side: `lab-env grade` scores learners' notebooks on the live stack; `build-labs` writes labs/.

spec.py      what a lab's checks are worth (read from the solution notebook)
assemble.py  the notebook actually run: the instructor's solution with the
             learner's answers in its exercise regions, screened (screen.py)
worker.py    one submission: drives its kernel (kernel.py) cell by cell and
             evaluates every check in the grader's own process (remote.py is
             the kernel's side of that conversation)
run.py       starts the worker, reads its signed verdicts
report.py    gradebook CSV, JUnit XML, per-learner feedback
batch.py     a folder of submissions, in parallel
generate.py  labs/ from solutions/ (the student notebooks; `lab-env build-labs`)
execute.py   run a notebook top to bottom (`lab-env run-solutions`)

The threat model is in docs/grading.md.
"""

from lab_env.grading.batch import grade_folder

__all__ = ["grade_folder"]
