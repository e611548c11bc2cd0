"""Which images the bakery builds: the local reference of each and the upstream image it stands in for."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lab_env.core.versions import pins
from lab_env.stack.devcontainer import go_version
from lab_env.stack.images.zipkin import version_of as zipkin_version

LOCAL_REPO = "localhost/lab-env"
# Which images compose files and rendered homes name: "upstream" (Codespaces, any machine that
# pulls) or "local" (the bakery's stand-ins, where nothing can be pulled). The one switch.
IMAGE_SET_VAR = "LAB_ENV_IMAGES"
DEBIAN_SUITE = "bookworm"
# The tools image carries all three versions, so a new pin is a new image.
K8S_TOOLS_TAG = "kind{kind}-kubectl{kubectl}-helm{helm}"


@dataclass(frozen=True)
class Image:
    """One image of the bakery. ``upstream``: what Codespaces pulls instead (None: the bakery's own base)."""

    name: str
    tag: str
    upstream: str | None
    needs: tuple[str, ...] = ()
    what: str = ""

    @property
    def ref(self) -> str:
        return f"{LOCAL_REPO}/{self.name}:{self.tag}"


def catalog() -> dict[str, Image]:
    """The images, in an order where every image comes after those it needs."""
    p = pins()
    images = [
        Image("debian", DEBIAN_SUITE, None, what="Debian minbase root file system (mmdebstrap); base of the others"),
        Image("busybox", "debian", p.image("busybox"), what="Debian's busybox-static, one link per applet"),
        Image("redis", p.redis, p.image("redis"), ("debian",), "Debian's redis-server, upstream's entrypoint rules"),
        Image(
            "kafka", p.kafka, p.image("kafka"), ("debian",), "Debian's JRE 17, the pinned jars, Kafka's Docker wrapper"
        ),
        Image(
            "agent-base",
            "3.11-bookworm",
            p.image("agent_base"),
            ("debian",),
            "Debian's Python 3.11 as a venv at /usr/local, the base lab 05's agent images build on",
        ),
        Image("dapr", p.dapr_runtime, p.image("dapr"), (), "daprd, placement, scheduler, sentry from the Go build"),
        # The devcontainer's workspace is built from these three (devcontainer/Dockerfile).
        Image(
            "golang",
            go_version(),
            f"golang:{go_version()}",
            ("debian",),
            "the Go toolchain the Go module proxy serves as golang.org/toolchain, at /usr/local/go",
        ),
        Image(
            "k8s-tools",
            K8S_TOOLS_TAG.format(**p.tools),
            None,
            ("debian",),
            "kubectl, kind and helm at the pinned versions, built here from their Go modules",
        ),
        Image(
            "workspace-base",
            "3.11-bookworm",
            p.image("workspace"),
            ("debian",),
            "Debian's Python 3.11, git, sudo and the user vscode (uid 1000), as the devcontainers base has them",
        ),
        Image(
            "zipkin",
            zipkin_version(p.image("zipkin")),
            p.image("zipkin"),
            ("debian",),
            "Zipkin's released server jar (Maven Central) on Debian's JRE 17, upstream's health check and user",
        ),
    ]
    return {image.name: image for image in images}


def get(name: str) -> Image:
    images = catalog()
    if name not in images:
        from lab_env.errors import LabEnvError

        raise LabEnvError(f"no image named {name!r}", f"choose among: {', '.join(images)}")
    return images[name]


def local_ref(upstream: str) -> str | None:
    """The bakery's stand-in for an upstream reference, or None when it builds none."""
    return next((i.ref for i in catalog().values() if i.upstream == upstream), None)


def image_set() -> str:
    chosen = os.environ.get(IMAGE_SET_VAR, "upstream")
    if chosen not in ("upstream", "local"):
        from lab_env.errors import LabEnvError

        raise LabEnvError(f"{IMAGE_SET_VAR}={chosen!r} is not an image set", "set it to upstream or local")
    return chosen


def choose(upstream: str) -> str:
    """``upstream``, or its stand-in when the local set is chosen (and the bakery builds one)."""
    if image_set() == "local":
        return local_ref(upstream) or upstream
    return upstream


def compose_env() -> dict[str, str]:
    """The devcontainer's image variables (devcontainer/.env) pointed at the chosen set."""
    from lab_env.stack.devcontainer import env_values

    chosen = {key: choose(value) for key, value in env_values().items() if key.endswith("_IMAGE")}
    if image_set() == "local":
        # Upstream the workspace base downloads the tools (devcontainer/k8s-tools.sh); here they are built.
        chosen["K8S_TOOLS_IMAGE"] = get("k8s-tools").ref
    return chosen
