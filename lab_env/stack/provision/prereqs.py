"""Tools the native stack is built with; a missing one is a one-line error."""

from __future__ import annotations

import re
import shutil
import subprocess

from lab_env.errors import LabEnvError

# What to install when a tool is missing, on Debian/Ubuntu and in general.
_HOW_TO_GET = {
    "go": "install Go 1.26+ (https://go.dev/dl or `apt-get install golang-1.26`)",
    "java": "install a Java 17+ runtime (`apt-get install openjdk-17-jre-headless`)",
    "mvn": "install Maven (`apt-get install maven`)",
}


def _version_of(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return out.stdout + out.stderr


def require_go(minimum: tuple[int, int] = (1, 26)) -> str:
    go = shutil.which("go")
    if not go:
        raise LabEnvError("Go is not installed (it builds the Dapr runtime)", _HOW_TO_GET["go"])
    match = re.search(r"go(\d+)\.(\d+)", _version_of([go, "version"]))
    if not match or (int(match[1]), int(match[2])) < minimum:
        raise LabEnvError(
            f"Go {'.'.join(map(str, minimum))}+ is needed, found {match[0] if match else '?'}", _HOW_TO_GET["go"]
        )
    return go


def require_java(minimum: int = 17) -> str:
    java = shutil.which("java")
    if not java:
        raise LabEnvError("Java is not installed (it runs the Kafka broker)", _HOW_TO_GET["java"])
    match = re.search(r'version "(\d+)', _version_of([java, "-version"]))
    if not match or int(match[1]) < minimum:
        raise LabEnvError(f"Java {minimum}+ is needed for Kafka 4", _HOW_TO_GET["java"])
    return java


def require_maven() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise LabEnvError("Maven is not installed (it fetches the Kafka jars)", _HOW_TO_GET["mvn"])
    return mvn


def require_tools() -> None:
    require_go()
    require_java()
    require_maven()
