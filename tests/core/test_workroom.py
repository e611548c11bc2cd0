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
    # not removed under the sandbox's processes (they could swap in a FIFO or a link): closed to them
    assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == "0o700"


def test_a_sandbox_without_a_scratch_folder_gets_no_workroom(tmp_path):
    procs.confine(procs.Confinement(tmp_path, lambda argv, env, cwd, tethered: argv, {}))
    try:
        with pytest.raises(procs.LabEnvError, match="no scratch folder"), procs.workroom("x-"):
            pass
    finally:
        procs.confine(None)


def test_hand_over_gives_the_named_subfolders_and_keeps_the_rest_and_what_is_not_its_own(confined, tmp_path):
    linked_file, pointed_at = tmp_path / "graders.txt", tmp_path / "pointed-at.txt"
    linked_file.write_text("the grader's")
    pointed_at.write_text("the grader's too")
    with procs.workroom("check-home-") as folder:
        (folder / "dapr.yaml").write_text("run file")
        (folder / "resources").mkdir()
        (folder / "resources" / "pubsub.yaml").write_text("component")
        (folder / "apps" / "sellers" / "deep").mkdir(parents=True)
        (folder / "apps" / "sellers" / "config.yaml").write_text("x")
        (folder / "apps" / "sellers" / "out").symlink_to(pointed_at)
        (folder / "apps" / "sellers" / "deep" / "way").symlink_to(tmp_path)
        os.link(linked_file, folder / "apps" / "linked.txt")  # a second name for a file of the grader's
        (folder / "apps" / "someone-elses").write_text("not the grader's to give")
        os.chown(folder / "apps" / "someone-elses", 777, 777)
        procs.hand_over(folder, "apps")
        owners = {p.relative_to(folder).as_posix(): p.lstat().st_uid for p in folder.rglob("*")}
        assert folder.stat().st_uid == os.geteuid()  # the learner cannot add or swap anything at the top
        assert owners["dapr.yaml"] == os.geteuid()  # nor touch what the grader writes there (its log)
        assert owners["resources"] == owners["resources/pubsub.yaml"] == os.geteuid()  # what the check trusts
        assert owners["apps"] == owners["apps/sellers"] == owners["apps/sellers/config.yaml"] == OWNER
        assert owners["apps/sellers/deep"] == OWNER
        assert owners["apps/linked.txt"] == os.geteuid()
        assert owners["apps/someone-elses"] == 777
        for target in (pointed_at, tmp_path, linked_file):  # no link was followed
            assert target.stat().st_uid == os.geteuid(), target


def test_hand_over_outside_the_sandbox_changes_nothing(confined, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "apps").mkdir(parents=True)
    procs.hand_over(outside, "apps")
    assert (outside / "apps").stat().st_uid == os.geteuid()
    procs.confine(None)
    with procs.workroom("x-") as folder:
        (folder / "apps").mkdir()
        procs.hand_over(folder, "apps")
        assert (folder / "apps").stat().st_uid == os.geteuid()
