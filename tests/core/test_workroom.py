"""procs.workroom and procs.hand_over: the folder a grader's check prepares for what it starts in a
grading sandbox (lab 05's home under `dapr run -f`). Ownership only: run as root, no sandbox needed."""

from __future__ import annotations

import os

import pytest

from lab_env.core import procs

OWNER = 54321  # a uid of no one here: the sandbox's
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hands files to another uid: root only")


@pytest.fixture
def confined(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    procs.confine(procs.Confinement(box, lambda argv, env, cwd, tethered: argv, {}, box / "checks", OWNER))
    yield box
    procs.confine(None)


def test_without_a_sandbox_a_workroom_is_a_private_temporary_folder(tmp_path):
    with procs.workroom("check-home-") as folder:
        assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == "0o700"
        assert folder.name.startswith("check-home-")
    assert not folder.exists()


def test_in_a_sandbox_it_is_in_the_graders_scratch_folder_and_readable(confined):
    with procs.workroom("check-home-") as folder:
        assert folder.parent == confined / "checks"
        assert folder.stat().st_uid == os.geteuid() and (confined / "checks").stat().st_uid == os.geteuid()
        assert oct(folder.stat().st_mode & 0o777) == "0o755"
    assert not folder.exists()


def test_hand_over_gives_the_inside_and_keeps_the_top_and_what_is_not_its_own(confined, tmp_path):
    grader_file = tmp_path / "graders.txt"
    grader_file.write_text("the grader's")
    with procs.workroom("check-home-") as folder:
        (folder / "dapr.yaml").write_text("run file")
        (folder / "apps" / "sellers").mkdir(parents=True)
        (folder / "apps" / "sellers" / "config.yaml").write_text("x")
        (folder / "apps" / "sellers" / "out").symlink_to(grader_file)
        os.link(grader_file, folder / "apps" / "linked.txt")  # a second name for a file of the grader's
        procs.hand_over(folder)
        owners = {p.relative_to(folder).as_posix(): p.lstat().st_uid for p in folder.rglob("*")}
        assert folder.stat().st_uid == os.geteuid()  # the learner cannot add or swap anything at the top
        assert owners["dapr.yaml"] == os.geteuid()  # nor touch what the grader writes there (its log)
        assert owners["apps"] == owners["apps/sellers"] == owners["apps/sellers/config.yaml"] == OWNER
        assert owners["apps/linked.txt"] == os.geteuid()
        assert grader_file.stat().st_uid == os.geteuid()  # the link was not followed


def test_hand_over_outside_the_sandbox_changes_nothing(confined, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "apps").mkdir(parents=True)
    procs.hand_over(outside)
    assert (outside / "apps").stat().st_uid == os.geteuid()
    procs.confine(None)
    with procs.workroom("x-") as folder:
        (folder / "apps").mkdir()
        procs.hand_over(folder)
        assert (folder / "apps").stat().st_uid == os.geteuid()
