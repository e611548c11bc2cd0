"""runc_wrapper without an engine: which capabilities it drops, from which files, and that it leaves the rest alone."""

from __future__ import annotations

import json

from lab_env.stack import engine, runc_wrapper

# This project's machines: every bit but 24 (CAP_SYS_RESOURCE) of 41.
STATUS = "Name:\tpython3\nCapBnd:\t000001fffeffffff\n"
ALL = [f"CAP_{name}" for name in runc_wrapper.CAPS]


def test_the_bounding_set_names_what_is_missing():
    assert runc_wrapper.missing_caps(STATUS) == {"CAP_SYS_RESOURCE"}
    assert runc_wrapper.missing_caps("CapBnd:\t000001ffffffffff\n") == set()


def test_the_bundle_and_process_files_lose_only_the_missing_capabilities(tmp_path):
    caps = {key: list(ALL) for key in runc_wrapper.SETS}
    (tmp_path / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "process": {"capabilities": caps}}))
    (tmp_path / "process.json").write_text(json.dumps({"args": ["sh"], "capabilities": caps}))
    argv = ["--root", "/x", "create", "--bundle", str(tmp_path), "id"]
    runc_wrapper.fix_spec(argv, {"CAP_SYS_RESOURCE"})
    runc_wrapper.fix_spec(["exec", f"--process={tmp_path / 'process.json'}", "id"], {"CAP_SYS_RESOURCE"})
    spec = json.loads((tmp_path / "config.json").read_text())
    process = json.loads((tmp_path / "process.json").read_text())
    want = [c for c in ALL if c != "CAP_SYS_RESOURCE"]
    assert spec["ociVersion"] == "1.0.2"
    assert all(spec["process"]["capabilities"][key] == want for key in runc_wrapper.SETS)
    assert all(process["capabilities"][key] == want for key in runc_wrapper.SETS)
    assert process["args"] == ["sh"]


def test_other_commands_and_unprivileged_specs_are_untouched(tmp_path):
    plain = {"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}}}
    (tmp_path / "config.json").write_text(json.dumps(plain))
    before = (tmp_path / "config.json").stat().st_mtime_ns
    runc_wrapper.fix_spec(["create", "--bundle", str(tmp_path), "id"], {"CAP_SYS_RESOURCE"})
    runc_wrapper.fix_spec(["delete", "id"], {"CAP_SYS_RESOURCE"})  # no --bundle: nothing to read
    assert (tmp_path / "config.json").stat().st_mtime_ns == before


def test_our_daemon_never_listens_on_the_default_socket_and_its_socket_path_is_short():
    config = engine.daemon_config()
    assert config["hosts"] == [engine.managed_host()]
    assert str(engine.DEFAULT_SOCKET) not in json.dumps(config)
    assert config["default-runtime"] == engine.RUNTIME
    # containerd's socket goes under the exec-root: it must fit in a unix socket's 108 bytes.
    assert len(f"{config['exec-root']}/containerd/containerd.sock") < 80
