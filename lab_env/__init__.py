"""lab_env: the helpers, the stack and the grader of the Dapr + Kafka agent labs.

The house, floor by floor (each folder's ``__init__`` says what it holds):
``core`` (no Dapr) < ``stack`` (the shared services) < ``runtime`` (apps and
their sidecars) < ``marketplace`` (the programs the course builds) <
``labs`` (the course, its checks) < ``grading`` and ``notebooks`` < ``cli``.

Notebooks import the everyday names from here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import CodeType, ModuleType

from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.runtime.apps import DaprApp, dapr_app, start_app, stop_app, unique_name, uvicorn_command

__all__ = [
    "DaprApp",
    "LabEnvError",
    "dapr_app",
    "start_app",
    "stop_app",
    "unique_name",
    "uvicorn_command",
    "wait_until",
]

# Where each module lived before the restructure (issue 26). Notebooks saved
# by learners and graded later import the old names; they resolve to the same
# module objects here, so nothing is defined twice. New code uses the new names.
MOVED: dict[str, str] = {
    "lab_env.paths": "lab_env.core.paths",
    "lab_env.versions": "lab_env.core.versions",
    "lab_env.profile": "lab_env.core.profile",
    "lab_env.ports": "lab_env.core.ports",
    "lab_env.procs": "lab_env.core.procs",
    "lab_env.probes": "lab_env.core.probes",
    "lab_env.progress": "lab_env.core.progress_bar",
    "lab_env.provision": "lab_env.stack.provision",
    "lab_env.components": "lab_env.stack.components",
    "lab_env.doctor": "lab_env.stack.doctor",
    "lab_env.devcontainer": "lab_env.stack.devcontainer",
    "lab_env.apps": "lab_env.runtime.apps",
    "lab_env.workers": "lab_env.runtime.workers",
    "lab_env.actors": "lab_env.runtime.actors",
    "lab_env.peers": "lab_env.runtime.peers",
    "lab_env.scale": "lab_env.runtime.scale",
    "lab_env.secure_plane": "lab_env.runtime.secure_plane",
    "lab_env.workflows": "lab_env.runtime.workflows",
    "lab_env.workflow_host": "lab_env.runtime.workflows.host",
    "lab_env.kafka": "lab_env.runtime.kafka",
    "lab_env.streams": "lab_env.runtime.kafka.streams",
    "lab_env.cluster": "lab_env.runtime.clusters.kind",
    "lab_env.native_cluster": "lab_env.runtime.clusters.native",
    "lab_env.agents": "lab_env.marketplace.agents",
    "lab_env.coordination": "lab_env.marketplace.coordination",
    "lab_env.homes": "lab_env.marketplace.homes",
    "lab_env.homes.sentry": "lab_env.runtime.sentry",
    "lab_env.market": "lab_env.marketplace.market",
    "lab_env.course": "lab_env.labs.course",
    "lab_env.checks": "lab_env.labs.checks",
    "lab_env.checks.core": "lab_env.labs.checks",
    "lab_env.notebooks.generate": "lab_env.grading.generate",
    "lab_env.notebooks.execute": "lab_env.grading.execute",
    "lab_env.notebooks.errors": "lab_env.notebooks.tracebacks",
    "lab_env.widgets": "lab_env.notebooks.widgets",
    "lab_env.jupyter": "lab_env.notebooks.jupyterlab",
    **{
        f"lab_env.checks.lab{n}": f"lab_env.labs.lab{n}_{name}.checks"
        for n, name in (
            ("01", "actors"),
            ("02", "pubsub"),
            ("03", "kafka"),
            ("04", "workflows"),
            ("05", "agent_homes"),
            ("06", "coordination"),
            ("07", "capstone"),
        )
    },
}


_WERE_PACKAGES = {"lab_env.checks"}


def new_name(old: str) -> str | None:
    """The module an old dotted name now lives at (``lab_env.agents.x`` -> ``lab_env.marketplace.agents.x``)."""
    parts = old.split(".")
    for cut in range(len(parts), 1, -1):
        head = ".".join(parts[:cut])
        if head in MOVED:
            return ".".join([MOVED[head], *parts[cut:]])
    return None


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the already-importable new module."""

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        target_name = new_name(fullname) if fullname.startswith("lab_env.") else None
        if target_name is None:
            return None
        try:
            module = importlib.import_module(target_name)
        except ImportError:
            return None
        is_package = hasattr(module, "__path__") or fullname in _WERE_PACKAGES
        # origin: `python -m <old name>` puts it in sys.argv[0], as for the new name.
        origin = module.__spec__.origin if module.__spec__ is not None else None
        return importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=is_package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        target_name = new_name(spec.name)
        assert target_name is not None
        module = importlib.import_module(target_name)
        if spec.name not in _WERE_PACKAGES:
            # The import system sets __spec__ to the alias's after this; exec_module puts
            # the module's own back, so importlib.reload and importlib.resources still work.
            self._own_specs[spec.name] = module.__spec__
            return module
        # lab_env.checks was a package of lab modules and is now one module:
        # a face that lends its names and still finds lab_env.checks.labNN.
        face = ModuleType(spec.name, module.__doc__)
        face.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        face.__path__ = []
        return face

    def exec_module(self, module: ModuleType) -> None:
        """The module ran under its new name already: only its own spec goes back."""
        own = self._own_specs.pop(getattr(module.__spec__, "name", ""), None)
        if own is not None:
            module.__spec__ = own

    def get_code(self, fullname: str) -> CodeType | None:
        """The new module's code, for `python -m <old name>` (saved lab 03 notebooks start workers so)."""
        target = importlib.util.find_spec(new_name(fullname) or fullname)
        loader = target.loader if target is not None else None
        get_code = getattr(loader, "get_code", None)
        return get_code(target.name) if target is not None and get_code is not None else None

    def is_package(self, fullname: str) -> bool:
        target = importlib.util.find_spec(new_name(fullname) or fullname)
        return bool(target and target.submodule_search_locations is not None)


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # before PathFinder, which would load a second copy
