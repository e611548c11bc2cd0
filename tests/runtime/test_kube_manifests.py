"""The manifests a cluster applies (metrics-server's, Dapr's CRDs) are copied
out of their Go modules once, so starting a cluster later needs no Go."""

from __future__ import annotations

import stat

import pytest

from lab_env.stack.provision import kube


@pytest.fixture
def module_tree(tmp_path, monkeypatch):
    """A module folder as Go's cache leaves it: read-only files and folders."""
    monkeypatch.setenv("LAB_ENV_CACHE", str(tmp_path / "cache"))
    module = tmp_path / "mod"
    base = module / "manifests" / "base"
    (base / "nested").mkdir(parents=True)
    (base / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    (base / "nested" / "deployment.yaml").write_text("kind: Deployment\n")
    (module / "charts" / "dapr" / "crds").mkdir(parents=True)
    (module / "charts" / "dapr" / "crds" / "components.yaml").write_text("kind: CustomResourceDefinition\n")
    for path in sorted(module.rglob("*"), reverse=True):
        path.chmod(0o444 if path.is_file() else 0o555)
    calls: list[tuple[str, str]] = []

    def module_dir(name: str, version: str):
        calls.append((name, version))
        return module

    monkeypatch.setattr(kube, "module_dir", module_dir)
    yield calls
    for path in module.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)


def test_copied_once_then_served_from_the_cache_without_go(module_tree, monkeypatch):
    first = kube.manifests("metrics-server")
    assert module_tree == [("sigs.k8s.io/metrics-server", f"v{kube.pins().kubernetes['metrics_server']}")]
    assert (first / "nested" / "deployment.yaml").read_text() == "kind: Deployment\n"
    # the cache stays deletable, unlike Go's module cache
    for folder in (first, first / "nested"):
        assert folder.stat().st_mode & stat.S_IWUSR
    monkeypatch.setenv("PATH", "/nonexistent")  # no go on the path now
    assert kube.manifests("metrics-server") == first
    assert len(module_tree) == 1


def test_nothing_half_copied_is_left_beside_it(module_tree):
    kept = kube.manifests("metrics-server")
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]
    assert kept.name.endswith(kube.pins().kubernetes["metrics_server"])


def test_a_copy_another_grader_landed_first_is_taken(module_tree, monkeypatch):
    real = kube.module_dir

    def racing(name, version):  # another grader's copy lands while this one downloads
        found = real(name, version)
        theirs = kube.cache_dir() / "manifests" / f"metrics-server-{version[1:]}"
        theirs.mkdir(parents=True)
        (theirs / "kustomization.yaml").write_text("theirs\n")
        return found

    monkeypatch.setattr(kube, "module_dir", racing)
    kept = kube.manifests("metrics-server")
    assert (kept / "kustomization.yaml").read_text() == "theirs\n"
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]


def test_install_kube_leaves_every_manifest_in_the_cache(module_tree, monkeypatch):
    # even when the binaries were built before the manifests were kept
    monkeypatch.setattr(kube, "kube_installed", lambda: True)
    kube.install_kube()
    assert sorted(name for name, _ in module_tree) == sorted(module for module, _, _ in kube.MANIFESTS.values())
    for name in kube.MANIFESTS:
        assert kube.manifests(name).is_dir()
