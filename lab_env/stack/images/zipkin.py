"""Zipkin's server as the bakery builds it: the released jar from Maven Central on Debian's JRE.

Upstream's ``openzipkin/zipkin`` image runs the same program: the project
publishes it as ``io.zipkin:zipkin-server:<version>:exec``, a self-contained
jar. What the stand-in reproduces: the server and its UI on port 9411, the
in-memory storage the devcontainer uses, the ``docker-healthcheck`` command
compose runs, and a non-root user. What it does not: upstream's JRE (21,
trimmed with jlink; here Debian bookworm's 17, which the jar supports), its
Alpine base, and the storage back ends' extra start scripts.

The jar is fetched once by Maven, with strict checksums, into its local
repository (~/.m2), and linked into the build context from there.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lab_env.core.paths import logs_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.stack.provision.prereqs import require_maven

GROUP, ARTIFACT, CLASSIFIER = "io.zipkin", "zipkin-server", "exec"
# Upstream's image runs as zipkin, uid 1000, from /zipkin.
USER_ID = 1000

DOCKERFILE = """\
FROM {debian}
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless wget \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd --uid {uid} --home-dir /zipkin --create-home --shell /usr/sbin/nologin zipkin
COPY zipkin.jar /zipkin/zipkin.jar
COPY docker-healthcheck start-zipkin /usr/local/bin/
WORKDIR /zipkin
USER zipkin
EXPOSE 9411
ENTRYPOINT ["start-zipkin"]
"""

# What upstream's health check asks: the server's own /health on its query port.
HEALTHCHECK = """\
#!/bin/sh
exec wget -q -O /dev/null "http://127.0.0.1:${QUERY_PORT:-9411}/health"
"""

# JAVA_OPTS as upstream's start script takes them (compose sets the heap there).
START = """\
#!/bin/sh
exec java ${JAVA_OPTS} -jar /zipkin/zipkin.jar "$@"
"""


def version_of(ref: str) -> str:
    """The jar's version: the pinned image's tag, which must name one release (3.4.4, not 3.4)."""
    from lab_env.errors import LabEnvError

    tag = ref.rpartition(":")[2]
    if tag.count(".") != 2 or not all(part.isdigit() for part in tag.split(".")):
        raise LabEnvError(
            f"the zipkin image {ref!r} has no release tag (major.minor.patch)",
            "pin [images] zipkin in lab_env/versions.toml to one release, e.g. openzipkin/zipkin:3.4.4",
        )
    return tag


def maven_repository() -> Path:
    """Maven's local repository: LAB_ENV_MAVEN_REPO (a grading sandbox reads the grader's), else ~/.m2's."""
    return Path(os.environ.get("LAB_ENV_MAVEN_REPO") or Path.home() / ".m2" / "repository")


def jar(version: str) -> Path:
    """The server jar in Maven's local repository, fetched first when it is not there."""
    local = maven_repository() / GROUP.replace(".", "/") / ARTIFACT / version
    path = local / f"{ARTIFACT}-{version}-{CLASSIFIER}.jar"
    if path.exists():
        return path
    local.mkdir(parents=True, exist_ok=True)
    # Lab 07, its tests and the image bakery may all ask at once: one Maven fetch, the others wait for it.
    with open(local / ".lab-env-fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path
        run_with_progress(
            [
                require_maven(),
                "-B",
                "--strict-checksums",
                "-Dstyle.color=never",
                "dependency:get",
                "-Dtransitive=false",
                f"-Dartifact={GROUP}:{ARTIFACT}:{version}:jar:{CLASSIFIER}",
            ],
            f"fetching Zipkin {version}'s server jar (Maven)",
            logs_dir() / "maven-zipkin.log",
            counts=lambda line: line.startswith("Downloaded from"),
            fix="check that Maven Central is reachable, then run `lab-env images build zipkin` again",
        )
    return path
