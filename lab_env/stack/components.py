"""The Dapr resource files in components/, checked and copied per app.

Files in components/ take hosts from environment variables (`envRef`), so
the same files serve the native and container profiles. A sidecar started by
lab-env gets those variables; `render_components(..., resolve_env=True)`
writes copies with the values filled in, for tools that start daprd without
lab-env (the stock `dapr run` reads ~/.dapr/components).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from lab_env.core.paths import COMPONENTS_DIR
from lab_env.core.profile import CONTAINER, NATIVE, PROFILES, current
from lab_env.errors import LabEnvError

CONFIG_FILE = COMPONENTS_DIR / "config" / "config.yaml"
_KINDS = {"Component", "Resiliency", "Subscription", "Configuration"}


def resource_files(directory: Path = COMPONENTS_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml"))


def load_resource(path: Path) -> dict:
    """Parse one resource file, or raise a one-line error saying what is wrong."""
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LabEnvError(
            f"{path.name} not found (in {path.parent})", "create it first (in a lab: run the cell that saves it)"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise LabEnvError(f"{path.name}{where} is not valid YAML", f"fix {path}") from err
    if not isinstance(doc, dict) or doc.get("kind") not in _KINDS:
        raise LabEnvError(f"{path.name} is not a Dapr resource (kind must be one of {sorted(_KINDS)})", f"fix {path}")
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        raise LabEnvError(f"{path.name} has no metadata.name", f"fix {path}")
    if doc["kind"] == "Component":
        spec = doc.get("spec") or {}
        if "type" not in spec or "version" not in spec:
            raise LabEnvError(f"{path.name}: a Component needs spec.type and spec.version", f"fix {path}")
        for item in spec.get("metadata") or []:
            if not isinstance(item, dict) or "name" not in item:
                raise LabEnvError(f"{path.name}: each spec.metadata entry needs a name", f"fix {path}")
    return doc


def validate_all(directory: Path = COMPONENTS_DIR) -> list[dict]:
    docs = [load_resource(p) for p in resource_files(directory)]
    names = [d["metadata"]["name"] for d in docs if d["kind"] == "Component"]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise LabEnvError(
            f"component names used twice in {directory}: {sorted(dupes)}", "give each component its own name"
        )
    return docs


def render_components(
    dest: Path,
    profile: str | None = None,
    resolve_env: bool = False,
    only: Iterable[str] | None = None,
    extra: Iterable[Path] = (),
    source: Path = COMPONENTS_DIR,
) -> Path:
    """Copy resource files into ``dest`` (created), optionally only some names.

    ``only`` keeps Components with those metadata names (and every
    non-Component resource); ``extra`` adds files such as an app's own
    subscriptions; ``resolve_env`` replaces envRef with the profile's value.
    """
    prof = current() if profile is None else {"native": NATIVE, "container": CONTAINER}[profile]
    assert prof.name in PROFILES
    wanted = set(only) if only is not None else None
    dest.mkdir(parents=True, exist_ok=True)
    for path in [*resource_files(source), *extra]:
        doc = load_resource(path)
        if wanted is not None and doc["kind"] == "Component" and doc["metadata"]["name"] not in wanted:
            continue
        if resolve_env:
            doc = _resolve_env(doc, prof.component_env())
            (dest / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        else:
            (dest / path.name).write_text(path.read_text())
    return dest


def _resolve_env(doc: dict, env: dict[str, str]) -> dict:
    for item in (doc.get("spec") or {}).get("metadata") or []:
        ref = item.pop("envRef", None)
        if ref is not None:
            item["value"] = env[ref]
    return doc
