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
from lab_env.stack.images import busybox, zipkin
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


KAFKA_DOCKERFILE = """\
FROM {debian}
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd --uid {appuser} --create-home --home-dir /home/appuser --shell /bin/bash appuser \\
 && mkdir -p /var/lib/kafka/data /etc/kafka/secrets /mnt/shared/config /opt/kafka/config \\
 && chown -R appuser:appuser /var/lib/kafka /etc/kafka /mnt/shared/config /opt/kafka/config
COPY libs/ /opt/kafka/libs/
COPY bin/ /opt/kafka/bin/
COPY docker/ /etc/kafka/docker/
ENV KAFKA_VERSION={version} PATH=/opt/kafka/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /opt/kafka
USER appuser
ENTRYPOINT ["/etc/kafka/docker/run"]
"""
# The upstream image runs as appuser, uid 1000.
KAFKA_APPUSER = 1000

# /opt/kafka/bin: the scripts compose and the labs call, each a main class of Kafka's jars.
KAFKA_RUN_CLASS = """\
#!/bin/bash
# lab-env's stand-in for kafka-run-class.sh: java with Kafka's jars, the heap and options
# the KAFKA_* variables give, and the tools' logging unless KAFKA_LOG4J_OPTS says otherwise.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -Djava.awt.headless=true} \\
  ${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/etc/kafka/docker/tools-log4j2.yaml} $KAFKA_OPTS \\
  -cp "/opt/kafka/libs/*" "$@"
"""
KAFKA_TOOLS = {
    "kafka-server-start.sh": "kafka.Kafka",
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
}
# The broker logs with its own configuration, which the wrapper writes into /opt/kafka/config.
KAFKA_SERVER_START = """\
#!/bin/bash
export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml}"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
exec kafka-run-class.sh kafka.Kafka "$@"
"""
# The start script: Kafka's own Docker wrapper (kafka.docker.KafkaDockerWrapper, in its jars)
# turns the KAFKA_* variables into server.properties, as the upstream image does, and
# formats the log dirs with CLUSTER_ID the first time; then the broker starts.
KAFKA_RUN = """\
#!/bin/bash
# lab-env's stand-in for the kafka image's start script.
set -e
# The wrapper writes the configs, then formats; on a restart the volume is formatted already
# (it passes no --ignore-formatted), which is the one failure that is fine.
if ! out=$(kafka-run-class.sh kafka.docker.KafkaDockerWrapper setup \\
    --default-configs-dir /etc/kafka/docker \\
    --mounted-configs-dir /mnt/shared/config \\
    --final-configs-dir /opt/kafka/config 2>&1); then
  case "$out" in
    *"is already formatted"*) echo "log dirs already formatted: kept" ;;
    *) printf '%s\\n' "$out" >&2; exit 1 ;;
  esac
else
  printf '%s\\n' "$out"
fi
exec kafka-server-start.sh /opt/kafka/config/server.properties
"""
# The defaults the wrapper starts from when no KAFKA_* variable is set: one KRaft node.
KAFKA_DEFAULT_SERVER = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=/var/lib/kafka/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
"""
KAFKA_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
"""
KAFKA_TOOLS_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDERR
      target: SYSTEM_ERR
      PatternLayout:
        pattern: "%p %m%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDERR
"""


def kafka(image: Image, context: Path) -> str:
    """A JRE from Debian, the broker's jars as the native stack installs them, and the scripts above."""
    from lab_env.stack.provision.kafka import kafka_installed, kafka_lib

    if not kafka_installed():
        raise LabEnvError(
            "Kafka's jars are not installed", "run `lab-env setup` (it fetches them), then build the images"
        )
    dockerfile = KAFKA_DOCKERFILE.format(debian=_needed(image, "debian"), appuser=KAFKA_APPUSER, version=image.tag)
    (context / "Dockerfile").write_text(dockerfile)
    libs = context / "libs"
    libs.mkdir()
    jars = sorted(kafka_lib().glob("*.jar"))
    for jar in jars:
        _link(jar, libs / jar.name)
    scripts = {"kafka-run-class.sh": KAFKA_RUN_CLASS, "kafka-server-start.sh": KAFKA_SERVER_START}
    for name, main in KAFKA_TOOLS.items():
        scripts.setdefault(name, f'#!/bin/bash\nexec kafka-run-class.sh {main} "$@"\n')
    for folder, files in (
        ("bin", scripts),
        ("docker", {"run": KAFKA_RUN, "server.properties": KAFKA_DEFAULT_SERVER,
                    "log4j2.yaml": KAFKA_LOG4J2, "tools-log4j2.yaml": KAFKA_TOOLS_LOG4J2}),
    ):  # fmt: skip
        (context / folder).mkdir()
        for name, text in files.items():
            path = context / folder / name
            path.write_text(text)
            path.chmod(0o755 if not name.endswith((".properties", ".yaml")) else 0o644)
    texts = [dockerfile, *scripts.values(), KAFKA_RUN, KAFKA_DEFAULT_SERVER, KAFKA_LOG4J2, KAFKA_TOOLS_LOG4J2]
    return "\n".join(texts + [f"{jar.name} {jar.stat().st_size}" for jar in jars])


AGENT_BASE_DOCKERFILE = """\
FROM {debian}
# Debian's Python 3.11 with a virtual environment at /usr/local: python, python3 and pip
# in /usr/local/bin and packages under /usr/local/lib/python3.11, where the upstream image has them.
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends python3 python3-venv \\
 && rm -rf /var/lib/apt/lists/* \\
 && python3 -m venv /usr/local
# pip trusts the system's certificates (Debian's plus the host's own CAs, see debian()), not only its own bundle.
ENV LANG=C.UTF-8 PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
"""


def agent_base(image: Image, context: Path) -> str:
    dockerfile = AGENT_BASE_DOCKERFILE.format(debian=_needed(image, "debian"))
    (context / "Dockerfile").write_text(dockerfile)
    return dockerfile


GOLANG_DOCKERFILE = """\
FROM {debian}
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends git gcc libc6-dev make \\
 && rm -rf /var/lib/apt/lists/*
COPY go/ /usr/local/go/
# The upstream image's conventions: GOPATH /go, the toolchain and its binaries on PATH.
ENV GOLANG_VERSION={version} GOPATH=/go GOTOOLCHAIN=local \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The module zip keeps no modes: the commands are made executable, as `go` does when it unpacks one.
RUN chmod 0755 /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* \\
 && mkdir -p /go/src /go/bin && chmod -R 1777 /go && go version
WORKDIR /go
"""


def golang(image: Image, context: Path) -> str:
    """The Go release the pin names, as the Go module proxy serves it (the module golang.org/toolchain)."""
    import json
    import platform
    import subprocess

    from lab_env.stack.provision.prereqs import require_go

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    version = f"v0.0.1-go{image.tag}.linux-{arch}"
    # Checked against the public checksum database, as `go` does when it switches toolchains.
    done = subprocess.run(
        [require_go(), "mod", "download", "-json", f"golang.org/toolchain@{version}"],
        cwd=context,
        env={**os.environ, "GOFLAGS": "", "GOSUMDB": "sum.golang.org"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabEnvError(
            f"the Go module proxy did not serve golang.org/toolchain@{version}: {done.stdout[-200:]}",
            "check network access to the Go module proxy and its checksum database",
        )
    tree = Path(json.loads(done.stdout)["Dir"])
    dockerfile = GOLANG_DOCKERFILE.format(debian=_needed(image, "debian"), version=image.tag)
    (context / "Dockerfile").write_text(dockerfile)
    # Hard links: the module cache's files are read-only, and a copy would be 250 MB each time.
    for source in tree.rglob("*"):
        target = context / "go" / source.relative_to(tree)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(source, target)
    return "\n".join([dockerfile, f"golang.org/toolchain {version}"])


K8S_TOOLS_DOCKERFILE = """\
FROM {debian}
COPY kubectl kind helm /opt/k8s-tools/
"""


def k8s_tools(image: Image, context: Path) -> str:
    """kubectl, kind and helm built on this machine from the Go module proxy (see k8s_tools.py)."""
    from lab_env.stack.images import k8s_tools as tools

    built = tools.build()
    dockerfile = K8S_TOOLS_DOCKERFILE.format(debian=_needed(image, "debian"))
    (context / "Dockerfile").write_text(dockerfile)
    identity = [dockerfile]
    for name, path in built.items():
        _link(path, context / name)
        identity.append(f"{name} {_sha256(path)}")
    return "\n".join(identity)


WORKSPACE_BASE_DOCKERFILE = """\
FROM {debian}
# What the project's devcontainer relies on in the devcontainers Python base: Python 3.11 with
# venv and pip, git, curl, sudo, and the user vscode (uid and gid 1000) who may sudo.
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends \\
      python3 python3-venv python3-pip python3-dev git curl sudo procps less openssh-client build-essential \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/bin/python3 /usr/local/bin/python \\
 && groupadd --gid 1000 vscode \\
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash vscode \\
 && printf 'vscode ALL=(root) NOPASSWD:ALL\\n' > /etc/sudoers.d/vscode && chmod 0440 /etc/sudoers.d/vscode \\
 && install -d -o vscode -g vscode /home/vscode/.cache /home/vscode/go
# Tools that bring their own certificate bundle (pip, uv, requests) trust the system's instead,
# which holds this machine's CAs (see debian()).
ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
"""


def workspace_base(image: Image, context: Path) -> str:
    dockerfile = WORKSPACE_BASE_DOCKERFILE.format(debian=_needed(image, "debian"))
    (context / "Dockerfile").write_text(dockerfile)
    return dockerfile


def zipkin_recipe(image: Image, context: Path) -> str:
    """Zipkin's released server jar on Debian's JRE (see zipkin.py for what the stand-in reproduces)."""
    server = zipkin.jar(image.tag)
    dockerfile = zipkin.DOCKERFILE.format(debian=_needed(image, "debian"), uid=zipkin.USER_ID)
    (context / "Dockerfile").write_text(dockerfile)
    _link(server, context / "zipkin.jar")
    for name, text in (("docker-healthcheck", zipkin.HEALTHCHECK), ("start-zipkin", zipkin.START)):
        (context / name).write_text(text)
        (context / name).chmod(0o755)
    return "\n".join([dockerfile, zipkin.HEALTHCHECK, zipkin.START, f"{server.name} {_sha256(server)}"])


def _link(source: Path, target: Path) -> None:
    """``source`` at ``target``: a hard link when the cache shares the file system (no copy), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# The host's own certificate authorities (a TLS-inspecting proxy's, a company's): images built
# here trust them too, or nothing inside them reaches PyPI or Maven Central through that proxy.
HOST_CAS = Path("/usr/local/share/ca-certificates")


def host_cas() -> list[Path]:
    return sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []


# Packages' maintainer scripts must not start services while an image is built.
POLICY_HOOK = 'printf "#!/bin/sh\\nexit 101\\n" > "$1/usr/sbin/policy-rc.d" && chmod 755 "$1/usr/sbin/policy-rc.d"'


def mmdebstrap_argv(tarball: Path) -> list[str]:
    """The Debian base: minbase from the host's apt sources, trusting the host's own CAs."""
    trust = []
    if host_cas():
        cas = " ".join(str(ca) for ca in host_cas())
        trust = [
            f"--customize-hook=copy-in {cas} /usr/local/share/ca-certificates/",
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--include=ca-certificates",
        f"--customize-hook={POLICY_HOOK}",
        *trust,
        DEBIAN_SUITE,
        str(tarball),
        str(HOST_SOURCES),
    ]


def debian(image: Image, context: Path) -> str:
    """No Dockerfile: the bakery runs mmdebstrap; the recipe is its arguments, the sources and the CAs."""
    sources = _sources()
    suites = {word for line in sources.splitlines() if line.startswith("Suites:") for word in line.split()[1:]}
    if DEBIAN_SUITE not in suites:
        raise LabEnvError(
            f"{HOST_SOURCES} has no {DEBIAN_SUITE} suite (it has {', '.join(sorted(suites)) or 'none'})",
            f"build the images on Debian {DEBIAN_SUITE}, or in its devcontainer",
        )
    cas = "".join(f"{ca.name} {_sha256(ca)}\n" for ca in host_cas())
    return "\n".join([" ".join(mmdebstrap_argv(Path("rootfs.tar"))), sources, cas])


def _sources() -> str:
    if not HOST_SOURCES.exists():
        raise LabEnvError(f"{HOST_SOURCES} is missing", "the Debian base is built on Debian (or in its devcontainer)")
    return HOST_SOURCES.read_text()


def busybox_recipe(image: Image, context: Path) -> str:
    """Debian's busybox-static at the version apt would fetch now: a new package is a new image."""
    import subprocess

    policy = subprocess.run(["apt-cache", "policy", "busybox-static"], capture_output=True, text=True, check=False)
    candidate = next((line.split()[-1] for line in policy.stdout.splitlines() if "Candidate:" in line), "unknown")
    return f"busybox-static {candidate} {busybox.REF}"


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
        _link(source, context / name)
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
    identity += [
        f"{path.relative_to(context)} {_sha256(path)}"
        for path in sorted((context / "etc").rglob("*"))
        if path.is_file()
    ]
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
    "kafka": kafka,
    "agent-base": agent_base,
    "golang": golang,
    "k8s-tools": k8s_tools,
    "workspace-base": workspace_base,
    "zipkin": zipkin_recipe,
}
