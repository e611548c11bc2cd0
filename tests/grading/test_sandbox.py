"""The grading sandbox's container, as built (pure: no engine). Work in progress, see lab_env/grading/sandbox.py."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from lab_env.core.paths import REPO_ROOT
from lab_env.grading.sandbox import Sandbox, read_only_mounts, rootfs_tar


def _sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox("grade-ada-1f2e3d", tmp_path / "ada", 3, "1f2e3d")


def _mounts(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]


def test_nothing_of_the_repository_but_lab_env_and_components_is_mounted(tmp_path):
    mounts = _mounts(_sandbox(tmp_path).run_argv(tmp_path / "conn" / "kernel.json"))
    sources = [Path(m.split(":")[0]) for m in mounts]
    assert REPO_ROOT not in sources
    inside = [s for s in sources if s.is_relative_to(REPO_ROOT)]
    assert all(s.parts[len(REPO_ROOT.parts)] in {"lab_env", "components", ".venv"} for s in inside), inside
    assert not any("solutions" in s.parts or ".git" in s.parts or "tests" in s.parts for s in sources)


def test_only_the_submissions_own_folder_is_writable(tmp_path):
    box = _sandbox(tmp_path)
    writable = [m for m in _mounts(box.run_argv(tmp_path / "conn" / "kernel.json")) if m.endswith(":rw")]
    assert writable == [f"{box.job}:{box.job}:rw"]


def test_no_privilege_its_own_uid_and_the_hosts_loopback(tmp_path):
    argv = _sandbox(tmp_path).run_argv(tmp_path / "conn" / "kernel.json")
    text = " ".join(argv)
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges", "--read-only", "--network host"):
        assert flag in text
    assert "--privileged" not in argv and not any(a == "--pid" or a.startswith("--pid=") for a in argv)  # own pid ns
    assert argv[argv.index("--user") + 1] == "50003:50003"


def test_the_kernel_gets_a_named_environment_not_the_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-learners")
    argv = _sandbox(tmp_path).run_argv(tmp_path / "conn" / "kernel.json")
    env = [argv[i + 1] for i, a in enumerate(argv) if a == "-e"]
    assert not any(e.startswith("OPENAI_API_KEY=") for e in env)
    assert "LAB_RUN_TOKEN=1f2e3d" in env and "LAB_ENV_GRADING=1" in env


def test_the_image_is_only_links_and_mount_points():
    with tarfile.open(fileobj=io.BytesIO(rootfs_tar())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert all(m.isdir() or m.issym() for m in members.values())
    assert members["tmp"].mode == 0o1777


def test_read_only_mounts_do_not_nest():
    sources = [m.source for m in read_only_mounts()]
    assert len(sources) == len(set(sources))
    assert not any(a != b and b.is_relative_to(a) for a in sources for b in sources)
