"""Build the catalog's images in dependency order, keeping those whose recipe is unchanged; report what is there.

    results = build(engine, ["redis"])    # builds debian first if it is missing or stale
    rows = status(engine)                 # one Row per image: built?, current?, size, age

Each image carries the label ``org.lab-env.recipe``: a hash of its recipe and of
the ids of the images it is built from. Equal label, no build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab_env.core.paths import cache_dir, logs_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.errors import LabEnvError
from lab_env.stack.engine import Engine
from lab_env.stack.images import busybox, recipes
from lab_env.stack.images.catalog import Image, catalog, get

LABEL = "org.lab-env.recipe"
LABEL_FIELD = '{{index .Config.Labels "org.lab-env.recipe"}}'
MMDEBSTRAP_FIX = "run `lab-env setup --containers` (it installs mmdebstrap), as root"


@dataclass(frozen=True)
class Built:
    name: str
    ref: str
    action: str  # "built" or "kept"
    seconds: float


@dataclass(frozen=True)
class Row:
    name: str
    ref: str
    upstream: str | None
    built: bool
    current: bool
    size_mb: float
    age: str


def context_dir(name: str) -> Path:
    return cache_dir() / "images" / name


def log_path(name: str) -> Path:
    return logs_dir() / f"image-{name}.log"


def order(names: list[str] | None = None) -> list[Image]:
    """The images to build for ``names`` (all when None), each after the images it needs."""
    images = catalog()
    wanted: set[str] = set()

    def add(name: str) -> None:
        for need in get(name).needs:
            add(need)
        wanted.add(name)

    for name in names or list(images):
        add(name)
    return [image for image in images.values() if image.name in wanted]


def _inspect(engine: Engine, ref: str, field: str) -> str | None:
    done = engine.docker("image", "inspect", "--format", field, ref, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else None


def recipe_digest(engine: Engine, image: Image) -> str:
    """The hash of ``image``'s recipe and of the ids of the images it needs (written into its context)."""
    context = context_dir(image.name)
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    text = recipes.RECIPES[image.name](image, context)
    parents = [_inspect(engine, get(need).ref, "{{.Id}}") or "missing" for need in image.needs]
    return hashlib.sha256("\n".join([text, *parents]).encode()).hexdigest()[:16]


def build(engine: Engine, names: list[str] | None = None, force: bool | Collection[str] = False) -> list[Built]:
    """Build what ``names`` need; an image whose recipe digest is unchanged is kept unless ``force``
    (True: every image, from scratch; a collection: the images it names)."""
    results = []
    for image in order(names):
        started = time.perf_counter()
        digest = recipe_digest(engine, image)
        label = f"{LABEL}={digest}"
        forced = force is True or (not isinstance(force, bool) and image.name in force)
        if not forced and _inspect(engine, image.ref, LABEL_FIELD) == digest:
            results.append(Built(image.name, image.ref, "kept", time.perf_counter() - started))
            continue
        if image.name == "debian":
            _build_debian(engine, image, label)
        elif image.name == "busybox":
            busybox.ensure(engine, force=True, label=label)
        else:
            _docker_build(engine, image, label, no_cache=forced)
        results.append(Built(image.name, image.ref, "built", time.perf_counter() - started))
    return results


def _build_debian(engine: Engine, image: Image, label: str) -> None:
    """A minbase root file system from the host's Debian sources (its apt keeps them), imported."""
    if not shutil.which("mmdebstrap"):
        raise LabEnvError("mmdebstrap is not installed", MMDEBSTRAP_FIX)
    if os.geteuid() != 0:
        raise LabEnvError("the Debian base is made as root (mmdebstrap's root mode)", MMDEBSTRAP_FIX)
    tarball = context_dir(image.name) / "rootfs.tar"
    run_with_progress(
        recipes.mmdebstrap_argv(tarball),
        f"image {image.name}",
        log_path(image.name),
        counts=lambda line: line.startswith("I: "),
        fix=f"see {log_path(image.name)}",
    )
    with open(tarball, "rb") as rootfs:
        data = rootfs.read()
    engine.check("import", "--change", 'CMD ["/bin/bash"]', "--change", f"LABEL {label}", "-", image.ref, input=data)
    tarball.unlink()


def _docker_build(engine: Engine, image: Image, label: str, no_cache: bool = False) -> None:
    context = context_dir(image.name)
    steps = sum(1 for line in (context / "Dockerfile").read_text().splitlines() if line[:1].isalpha())
    run_with_progress(
        [
            "docker",
            "build",
            "--force-rm",
            *(["--no-cache"] if no_cache else []),
            "--label",
            label,
            "-t",
            image.ref,
            str(context),
        ],
        f"image {image.name}",
        log_path(image.name),
        total=steps,
        counts=lambda line: line.startswith("Step "),
        # The classic builder: BuildKit's would fetch its Dockerfile frontend from a registry.
        env={"DOCKER_HOST": engine.host, "DOCKER_BUILDKIT": "0"},
        fix=f"see {log_path(image.name)}",
    )


def status(engine: Engine) -> list[Row]:
    """What the engine holds of the catalog."""
    rows = []
    for image in catalog().values():
        found = _inspect(engine, image.ref, "{{.Size}} {{.Created}} " + LABEL_FIELD)
        if found is None:
            rows.append(Row(image.name, image.ref, image.upstream, False, False, 0.0, "-"))
            continue
        size, created, digest = (found.split(" ", 2) + ["", ""])[:3]
        when = datetime.fromisoformat(created[:19]).replace(tzinfo=UTC)
        age = datetime.now(UTC) - when
        try:
            current = digest == recipe_digest(engine, image)
        except LabEnvError:  # an input is missing here (jars, binaries): the image is not current
            current = False
        size_mb = int(size) / 1e6
        rows.append(Row(image.name, image.ref, image.upstream, True, current, size_mb, _age(age.total_seconds())))
    return rows


@dataclass(frozen=True)
class Pruned:
    images: int  # how many untagged images went
    reclaimed: str  # the space freed, as the engine reports it ("832.1MB")


def prune(engine: Engine, label: str | None = None) -> Pruned:
    """Remove the images no tag names any more: each rebuild of an image leaves the one before it behind,
    untagged. A tagged image, or one a container still uses, stays. ``label``: only images with it."""
    only = ["--filter", f"label={label}"] if label else []
    before = set(engine.check("images", "-q", "--filter", "dangling=true", *only).split())
    report = engine.check("image", "prune", "--force", *only, timeout=600.0)
    after = set(engine.check("images", "-q", "--filter", "dangling=true", *only).split())
    reclaimed = next(
        (line.split(":", 1)[1].strip() for line in report.splitlines() if line.startswith("Total reclaimed space")),
        "0B",
    )
    return Pruned(len(before - after), reclaimed)


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f} {unit}"
    return f"{seconds:.0f} s"


def require(engine: Engine, upstream_or_local: str) -> str:
    """The local reference for an image compose or a home names; one line naming the build when it is absent."""
    image = next(
        (i for i in catalog().values() if upstream_or_local in (i.ref, i.upstream)),
        None,
    )
    if image is None:
        if _inspect(engine, upstream_or_local, "{{.Id}}"):
            return upstream_or_local
        raise LabEnvError(
            f"image {upstream_or_local} is neither built here nor in the engine, and nothing can be pulled",
            "add it to lab_env/stack/images/catalog.py and its recipe",
        )
    if _inspect(engine, image.ref, "{{.Id}}") is None:
        raise LabEnvError(f"image {image.ref} is not built", f"run `lab-env images build {image.name}`")
    return image.ref
