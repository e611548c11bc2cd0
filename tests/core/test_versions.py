"""The version pins in lab_env/versions.toml are the ones every part uses."""

from __future__ import annotations

from pathlib import Path

from lab_env.core.paths import REPO_ROOT
from lab_env.core.versions import drift, pins


def test_every_part_matches_the_pins():
    assert drift() == []


def test_a_drifted_sdk_pin_is_reported():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text().replace(f"dapr=={pins().dapr_python_sdk}", "dapr==1.17.0")
    assert drift(pyproject=pyproject) == [f"pyproject.toml does not pin dapr=={pins().dapr_python_sdk}"]


def test_a_drifted_runtime_is_reported():
    gomod = (Path(__file__).parents[2] / "lab_env/stack/provision/dapr_build/go.mod").read_text()
    wrong = gomod.replace(f"dapr/dapr v{pins().dapr_runtime}", "dapr/dapr v1.17.0")
    assert drift(gomod=wrong) == [f"dapr_build/go.mod does not require github.com/dapr/dapr v{pins().dapr_runtime}"]


def test_image_tags_follow_the_pins():
    p = pins()
    assert p.image("dapr") == f"daprio/dapr:{p.dapr_runtime}"
    assert p.image("kafka") == f"apache/kafka:{p.kafka}"
