"""A native cluster's name becomes file names under the state folder: the
name a notebook hands a check must not reach a path outside it."""

from __future__ import annotations

import pytest

from lab_env.errors import LabEnvError
from lab_env.runtime.clusters.native import DEFAULT_NAME, NativeCluster


@pytest.mark.parametrize("name", [DEFAULT_NAME, "agent-homes-3f9a1c", "a", "x" * 63])
def test_kwokctl_names_are_accepted_and_stay_in_the_state_folder(name):
    cluster = NativeCluster(name)
    for path in (cluster.home, cluster.kubeconfig, cluster.config_file):
        assert path.resolve().is_relative_to(cluster.workdir.resolve())


@pytest.mark.parametrize(
    "name",
    ["../../tmp/evil", "..", "a/b", "Upper", "-lead", "trail-", "x" * 64, "", "a b", "a\nb", 7],
)
def test_anything_else_is_refused_in_one_line(name):
    with pytest.raises(LabEnvError, match="is not a cluster name") as refused:
        NativeCluster(name)
    assert "\n" not in refused.value.problem.replace(repr(name), "")


def test_lab_env_down_skips_a_folder_that_is_no_cluster_name(tmp_path, monkeypatch):
    from lab_env.runtime.clusters import native

    monkeypatch.setenv("LAB_ENV_STATE", str(tmp_path))
    clusters = NativeCluster().workdir / "clusters"
    (clusters / "Not_A_Cluster-abc123").mkdir(parents=True)
    seen = []
    monkeypatch.setattr(native, "down", lambda name, **_: seen.append(name) or True)
    assert native.down_all() == [] and native.forget_run("abc123") == [] and seen == []
