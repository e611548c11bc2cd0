"""Dapr on the kind cluster built here: Dapr's own Helm chart, on images built here.

The chart is the one the pinned github.com/dapr/dapr module carries
(charts/dapr), installed with the helm the bakery builds. Its images are
stand-ins for ghcr.io/dapr/<name>: one image holding the binaries of the Dapr
build (daprd, placement, scheduler, sentry, and the operator and injector that
only Kubernetes needs) as distroless's nonroot user, tagged once per name the
chart uses, and loaded into every node with `kind load`.

What differs from a default install, and why:
- dapr_scheduler.cluster.inMemoryStorage and dapr_placement.cluster.forceInMemoryLog:
  the node image has no storage provisioner, so no PersistentVolumeClaim can
  bind; the scheduler's jobs and placement's log do not survive their pod.
"""

from __future__ import annotations

import shutil

from lab_env.core.paths import cache_dir
from lab_env.core.versions import pins
from lab_env.stack.engine import Engine
from lab_env.stack.images import kind_node
from lab_env.stack.images.catalog import LOCAL_REPO

NAMESPACE = "dapr-system"
NAMES = ("operator", "placement", "scheduler", "sentry", "injector", "daprd")
DOCKERFILE = """\
FROM {dapr}
COPY operator injector /
"""
VALUES = {
    "global.registry": LOCAL_REPO,
    "global.ha.enabled": "false",
    "dapr_scheduler.cluster.inMemoryStorage": "true",
    "dapr_placement.cluster.forceInMemoryLog": "true",
}


def image_refs() -> list[str]:
    return [f"{LOCAL_REPO}/{name}:{pins().dapr_runtime}" for name in NAMES]


def images(engine: Engine) -> list[str]:
    """Build the Dapr image (unless current) and tag it with each name the chart pulls."""
    from lab_env.stack.images import bakery
    from lab_env.stack.provision import kind_build

    bins = kind_build.dapr_k8s()
    base = bakery.build(engine, ["dapr"])[-1].ref
    dockerfile = DOCKERFILE.format(dapr=base)
    context = cache_dir() / "images" / "dapr-k8s"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(dockerfile)
    for name in kind_build.DAPR_K8S:
        shutil.copy2(bins / name, context / name)
    label = kind_node.digest(
        dockerfile.encode(),
        kind_node.image_id(engine, base).encode(),
        *(kind_node.file_digest(bins / name) for name in kind_build.DAPR_K8S),
    )
    ref = f"{LOCAL_REPO}/dapr-k8s:{pins().dapr_runtime}"
    if kind_node.recipe_label(engine, ref) != label:
        kind_node.build_image(engine, context, ref, label, "dapr-k8s")
    refs = image_refs()
    for tag in refs:
        engine.check("tag", ref, tag)
    return refs


def chart_dir() -> str:
    from lab_env.stack.provision import dapr
    from lab_env.stack.provision.gobuild import download_module
    from lab_env.stack.provision.prereqs import require_go

    version = pins().dapr_runtime
    return str(download_module(require_go(), "github.com/dapr/dapr", f"v{version}", dapr.BUILD_MODULE) / "charts/dapr")


def helm_argv(helm: str, context: str, timeout: str) -> list[str]:
    values = {**VALUES, "global.tag": pins().dapr_runtime}
    sets = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    return [
        helm, "upgrade", "--install", "dapr", chart_dir(), "--namespace", NAMESPACE, "--create-namespace",
        "--kube-context", context, "--wait", "--timeout", timeout, *sets,
    ]  # fmt: skip
