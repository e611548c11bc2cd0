"""`lab-env grade`: run learners' notebooks against the live stack and score them.

spec.py     what a lab's checks are worth (read from the solution notebook)
assemble.py the notebook actually run: the learner's cells with the
            instructor's check cells put back (anti-tamper)
run.py      one submission through pytest + nbval in its own kernel
report.py   gradebook CSV, JUnit XML, per-learner feedback
batch.py    a folder of submissions, in parallel
"""

from .batch import grade_folder

__all__ = ["grade_folder"]
