"""How each image of the catalog is made: the files of its build context and what its recipe depends on.

A recipe writes its build context into a folder and returns the text its
identity depends on (the bakery hashes it with the ids of the images it
needs). An image whose recipe text is unchanged is not rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from lab_env.core.paths import dapr_bin
from lab_env.errors import LabEnvError
from lab_env.stack.images import busybox
from lab_env.stack.images.catalog import DEBIAN_SUITE, Image

# Debian's apt sources on this machine: the same mirror (or snapshot) the host installs from.
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DAPR_BINARIES = ("daprd", "placement", "scheduler", "sentry")
# distroless's nonroot user, which the upstream Dapr image runs as.
NONROOT = 65532

REDIS_DOCKERFILE = """\
FROM {debian}
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
"""

# The rules of the upstream image's entrypoint that compose relies on, written here.
REDIS_ENTRYPOINT = """\
#!/bin/sh
# lab-env's stand-in for the redis image's entrypoint.
set -e
# Bare options are redis-server's, as upstream treats them.
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
  # Other containers reach it unless a config file given as $2 sets protected-mode itself.
  if ! { [ -f "${2:-}" ] && grep -q '^protected-mode' "$2"; }; then
    set -- "$@" --protected-mode no
  fi
  if [ "$(id -u)" = 0 ]; then
    # The data volume belongs to redis, which the server runs as.
    find . \\! -user redis -exec chown redis:redis '{}' +
    umask 0077
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
"""

DAPR_DOCKERFILE = """\
FROM scratch
COPY etc/ /etc/
COPY --chown={nonroot}:{nonroot} var/ /var/
COPY daprd placement scheduler sentry /
USER {nonroot}:{nonroot}
WORKDIR /
"""


def debian(image: Image, context: Path) -> str:
    """No Dockerfile: the bakery runs mmdebstrap (see bakery.build_debian); the recipe is its arguments."""
    return f"mmdebstrap minbase {DEBIAN_SUITE} ca-certificates\n{_sources()}"


def _sources() -> str:
    if not HOST_SOURCES.exists():
        raise LabEnvError(f"{HOST_SOURCES} is missing", "the Debian base is built on Debian (or in its devcontainer)")
    return HOST_SOURCES.read_text()


def busybox_recipe(image: Image, context: Path) -> str:
    return f"busybox-static {busybox.REF}"


def redis(image: Image, context: Path) -> str:
    dockerfile = REDIS_DOCKERFILE.format(debian=_needed(image, "debian"))
    (context / "Dockerfile").write_text(dockerfile)
    entry = context / "docker-entrypoint.sh"
    entry.write_text(REDIS_ENTRYPOINT)
    entry.chmod(0o755)
    return dockerfile + REDIS_ENTRYPOINT


def dapr(image: Image, context: Path) -> str:
    """The four binaries of the project's own Dapr build, each statically linked."""
    dockerfile = DAPR_DOCKERFILE.format(nonroot=NONROOT)
    (context / "Dockerfile").write_text(dockerfile)
    identity = [dockerfile]
    for name in DAPR_BINARIES:
        source = dapr_bin(name)
        if not source.exists():
            raise LabEnvError(f"{source} is missing", "run `lab-env setup` (it builds Dapr), then build the images")
        target = context / name
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)  # no copy of 100 MB binaries when the cache shares the file system
        except OSError:
            shutil.copy2(source, target)
        stat = source.stat()
        identity.append(f"{name} {stat.st_size} {_sha256(source)}")
    etc = context / "etc"
    (etc / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
    users = f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}::/:/sbin/nologin\n"
    (etc / "passwd").write_text(users)
    (etc / "group").write_text(f"root:x:0:\nnonroot:x:{NONROOT}:\n")
    certs = Path("/etc/ssl/certs/ca-certificates.crt")
    if certs.exists():
        shutil.copy2(certs, etc / "ssl" / "certs" / "ca-certificates.crt")
    # The scheduler keeps etcd's data under /var/lock, where compose mounts a volume; a
    # volume takes the owner of the folder it covers, so the nonroot user can write it.
    (context / "var" / "lock" / "dapr").mkdir(parents=True, exist_ok=True)
    return "\n".join(identity)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _needed(image: Image, name: str) -> str:
    from lab_env.stack.images.catalog import get

    assert name in image.needs, f"{image.name} must list {name} in its needs"
    return get(name).ref


RECIPES: dict[str, Callable[[Image, Path], str]] = {
    "debian": debian,
    "busybox": busybox_recipe,
    "redis": redis,
    "dapr": dapr,
}
