"""Every image the project names has a stand-in in the bakery, or is listed here as not built yet."""

from __future__ import annotations

import os

import pytest
import yaml

from lab_env.marketplace.homes import container
from lab_env.marketplace.homes.spec import load
from lab_env.stack.devcontainer import env_values
from lab_env.stack.images import catalog

# Named by devcontainer/ and not built here: none.
NOT_BUILT_YET: set[str] = set()


def test_every_devcontainer_image_has_a_stand_in_or_is_listed_as_not_built_yet():
    images = {key: ref for key, ref in env_values().items() if key.endswith("_IMAGE")}
    missing = {key for key, ref in images.items() if catalog.local_ref(ref) is None}
    assert missing == NOT_BUILT_YET, (
        f"no stand-in for {sorted(missing - NOT_BUILT_YET)}; built now: {sorted(NOT_BUILT_YET - missing)}"
    )


def test_the_local_set_puts_stand_ins_in_compose_and_in_rendered_homes(monkeypatch):
    monkeypatch.setenv(catalog.IMAGE_SET_VAR, "local")
    chosen = catalog.compose_env()
    assert chosen["DAPR_IMAGE"] == catalog.get("dapr").ref and chosen["REDIS_IMAGE"] == catalog.get("redis").ref
    spec = load(os.path.join(os.path.dirname(container.__file__), "marketplace.yaml"))
    services = yaml.safe_load(yaml.safe_dump(container.compose(spec)))["services"]
    named = {svc["image"] for name, svc in services.items() if "build" not in svc}
    assert named == {catalog.get("dapr").ref, catalog.get("busybox").ref}
    assert f"FROM {catalog.get('agent-base').ref}" in container.dockerfile(spec.agents[0], spec)


def test_the_upstream_set_is_the_default_and_a_wrong_set_is_one_line(monkeypatch):
    monkeypatch.delenv(catalog.IMAGE_SET_VAR, raising=False)
    assert catalog.choose("redis:7.0") == "redis:7.0"
    monkeypatch.setenv(catalog.IMAGE_SET_VAR, "locale")
    with pytest.raises(Exception, match="not an image set"):
        catalog.choose("redis:7.0")


def test_kubectl_build_module_follows_the_kubectl_pin():
    from lab_env.stack.images import k8s_tools

    assert k8s_tools.drift() == []
    assert k8s_tools.kubectl_module_version("require (\n\tk8s.io/kubectl v0.33.0\n)\n") == "v0.33.0"


@pytest.mark.parametrize(
    ("profile", "version", "kept"),
    [("container", None, True), ("native", None, False), ("container", "1.17.0", False)],
)
def test_setup_keeps_an_images_dapr_binaries_only_in_the_container_profile_at_the_pin(
    tmp_path, monkeypatch, profile, version, kept
):
    from lab_env.core.versions import pins
    from lab_env.stack.provision import dapr

    (tmp_path / "bin").mkdir()
    for name in dapr.COMMANDS:  # no stamp of our build: as devcontainer/Dockerfile copies them
        binary = tmp_path / "bin" / name
        binary.write_text(f"#!/bin/sh\necho {version or pins().dapr_runtime}\n")
        binary.chmod(0o755)
    monkeypatch.setenv("DAPR_HOME", str(tmp_path))
    monkeypatch.setenv("LAB_ENV_PROFILE", profile)
    assert dapr.installed() is kept
