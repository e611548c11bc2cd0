"""Which images the bakery builds: the local reference of each and the upstream image it stands in for."""

from __future__ import annotations

from dataclasses import dataclass

from lab_env.core.versions import pins

LOCAL_REPO = "localhost/lab-env"
DEBIAN_SUITE = "bookworm"


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
        Image("dapr", p.dapr_runtime, p.image("dapr"), (), "daprd, placement, scheduler, sentry from the Go build"),
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
