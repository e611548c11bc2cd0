"""The learners' copy of the course (lab-env release): no solutions, and it still runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab_env.errors import LabEnvError
from lab_env.grading.release import answers_in, release

# Answers that are also lab_env's reference implementations, which other parts of the course run.
# A new entry here is a new leak: move the reference out of the learners' reach, or list it with a reason.
KNOWN = {
    ("06", 4, "lab_env/marketplace/agents/auctioneer.py"),  # the reference deadline (schedule_close)
    ("06", 5, "lab_env/marketplace/agents/auctioneer.py"),  # the reference deadline (receive_reminder)
    ("06", 6, "lab_env/marketplace/coordination/auction.py"),  # the reference Vickrey price
    ("06", 7, "lab_env/marketplace/coordination/voting.py"),  # the reference quorum
}


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "course"
    release(out)
    return out


def test_the_release_has_the_labs_and_the_package_and_no_solutions(released):
    assert not (released / "solutions").exists() and not (released / "tests").exists()
    assert (released / "labs" / "01_actors.ipynb").exists() and (released / "labs" / "hints.json").exists()
    assert (released / "lab_env" / "cli" / "main.py").exists() and (released / "RELEASE.md").exists()
    assert (released / ".devcontainer").exists() and (released / "components" / "statestore.yaml").exists()


def test_no_answer_is_in_the_release_but_the_known_reference_implementations(released):
    assert set(answers_in(released)) <= KNOWN, sorted(set(answers_in(released)) - KNOWN)


def test_the_released_package_runs_without_the_solutions(released):
    done = subprocess.run(
        [sys.executable, "-m", "lab_env.cli", "hint", "01", "5", "1"],
        cwd=released,
        env={
            "PYTHONPATH": str(released),
            "LAB_ENV_PROGRESS_FILE": str(released / "progress.json"),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and 'Hint 1 of 3 (hint("01", 5)' in done.stdout, done.stdout + done.stderr


def test_a_folder_that_is_not_empty_is_refused(tmp_path):
    (tmp_path / "old").write_text("x")
    with pytest.raises(LabEnvError, match="is not empty"):
        release(tmp_path)
