"""Apache Kafka from Maven Central jars: the broker and Kafka's perf tools."""

from __future__ import annotations

import base64
import shutil
import uuid
from pathlib import Path

from lab_env.core.paths import cache_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.core.versions import pins
from lab_env.stack.provision.prereqs import require_java, require_maven

POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J2_CONFIG = Path(__file__).parent / "kafka" / "log4j2.properties"
TOOLS_LOG4J2_CONFIG = Path(__file__).parent / "kafka" / "tools-log4j2.properties"


def kafka_lib() -> Path:
    return cache_dir() / f"kafka-{pins().kafka}" / "lib"


def classpath() -> str:
    return str(kafka_lib() / "*")


def java_command(main: str, *args: str, log_config: Path = LOG4J2_CONFIG, heap_mb: int = 512) -> list[str]:
    """``java`` running ``main`` from the Kafka jars (the broker, and Kafka's CLI tools)."""
    return [
        "java",
        f"-Xms{min(256, heap_mb)}m",
        f"-Xmx{heap_mb}m",
        # A lab broker shares 2 cores with everything else: the serial collector and the client
        # compiler alone (no C2) halved its CPU here, to ready 9.0 -> 4.6 s and through lab 03
        # 15.4 -> 7.4 s (one run each), in the same wall time. A production broker wants G1 and C2.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        classpath(),
        main,
        *args,
    ]


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, as `kafka-storage.sh random-uuid` prints.
    Never one that starts with "-", which the storage tool's argument parser would take for an option
    (one id in 64 does)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_installed() -> bool:
    return (kafka_lib().parent / ".complete").exists()


def install_kafka(force: bool = False) -> Path:
    lib = kafka_lib()
    if kafka_installed() and not force:
        return lib
    require_java()
    mvn = require_maven()
    p = pins()
    # Jars land in a staging folder first, so an interrupted run never leaves
    # a half-filled lib/ that looks installed.
    staging = lib.parent / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    argv = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        f"-Dkafka.version={p.kafka}",
        f"-Dscala.binary={p.scala}",
        f"-Dlog4j.version={p.log4j}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    run_with_progress(
        argv,
        f"fetching Kafka {p.kafka} jars (Maven)",
        cache_dir() / "logs" / "maven-kafka.log",
        counts=lambda line: line.startswith(("Downloaded from", "[INFO] Copying")),
        fix="check that Maven Central is reachable, then run `lab-env setup` again",
    )
    (lib.parent / ".complete").unlink(missing_ok=True)
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (lib.parent / ".complete").write_text(f"{p.kafka}\n")
    return lib
