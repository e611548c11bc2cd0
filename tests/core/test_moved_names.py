"""Notebooks saved before the restructure (issue 26) import modules by their old names."""

import importlib
import subprocess
import sys

import pytest

import lab_env
from lab_env import MOVED, new_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_name_is_the_new_module_itself(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old]) or old in ("lab_env.checks",)


def test_old_names_inside_moved_packages_resolve():
    assert new_name("lab_env.agents.market_actors") == "lab_env.marketplace.agents.market_actors"
    assert new_name("lab_env.checks.lab03") == "lab_env.labs.lab03_kafka.checks"
    assert new_name("lab_env.runtime.apps") is None


def test_a_saved_notebooks_imports_load_each_module_once():
    # A fresh interpreter: a second copy of a module would define its actor
    # classes twice, and Dapr would register two types under one name.
    code = (
        "from lab_env.checks import lab01 as check\n"
        "from lab_env.checks.lab03 import tally\n"
        "from lab_env import kafka, native_cluster\n"
        "from lab_env.apps import wait_until\n"
        "from lab_env.agents.market_actors import ProductActor\n"
        "import lab_env.market.control as old, lab_env.marketplace.market.control as new\n"
        "import sys\n"
        "assert old is new\n"
        "assert check.__name__ == 'lab_env.labs.lab01_actors.checks'\n"
        "assert ProductActor.__module__ == 'lab_env.marketplace.agents.market_actors'\n"
        "assert not [m for m in sys.modules if m.startswith(('lab_env.agents', 'lab_env.market.'))"
        " and sys.modules[m].__name__ == m], 'a module loaded under its old name'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_old_name_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lab_env.agents.no_such_agent")
    assert lab_env.LabEnvError


def test_python_dash_m_runs_an_old_module_name(tmp_path):
    # Lab 03 notebooks saved before the move start workers as `python -m lab_env.agents.group_member`.
    out = subprocess.run(
        [sys.executable, "-m", "lab_env.agents.group_member", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and "--topic" in out.stdout, out.stderr[-500:]


def test_an_old_name_leaves_the_modules_own_spec_so_reload_works():
    code = (
        "import importlib, lab_env.apps, lab_env.runtime.apps as apps\n"
        "assert apps.__spec__.name == 'lab_env.runtime.apps', apps.__spec__\n"
        "importlib.reload(apps)\n"
        "assert apps.__name__ == 'lab_env.runtime.apps'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
