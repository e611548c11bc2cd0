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


def test_a_half_copied_folder_is_never_served(module_tree):
    kept = kube.manifests("metrics-server")
    staging = kept.with_name(f".{kept.name}.new")
    assert not staging.exists()
    assert kept.name.endswith(kube.pins().kubernetes["metrics_server"])


def test_install_kube_leaves_every_manifest_in_the_cache(module_tree, monkeypatch):
    # even when the binaries were built before the manifests were kept
    monkeypatch.setattr(kube, "kube_installed", lambda: True)
    kube.install_kube()
    assert sorted(name for name, _ in module_tree) == sorted(module for module, _, _ in kube.MANIFESTS.values())
    for name in kube.MANIFESTS:
        assert kube.manifests(name).is_dir()
